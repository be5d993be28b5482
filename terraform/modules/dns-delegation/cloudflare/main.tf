# The delegation (../) in the Cloudflare zone of the parent zone.

terraform {
  required_version = ">= 1.9.0"
  required_providers {
    cloudflare = {
      source  = "cloudflare/cloudflare"
      version = ">= 4.39.0, < 5.0.0"
    }
  }
}

variable "parent_zone_id" {
  description = "ID of the Cloudflare zone of the parent zone (example.com for infer.example.com): 32 hex digits, on the zone's overview page."
  type        = string
  validation {
    condition     = can(regex("^[0-9a-f]{32}$", var.parent_zone_id))
    error_message = "parent_zone_id must be a Cloudflare zone ID: 32 lower-case hex digits."
  }
}

module "delegation" {
  source      = "../"
  zone        = var.zone
  nameservers = var.nameservers
  ttl         = var.ttl
}

resource "cloudflare_record" "delegation" {
  for_each = module.delegation.records
  zone_id  = var.parent_zone_id
  name     = each.value.name
  type     = each.value.type
  ttl      = each.value.ttl
  content  = each.value.value
  # DNS only: Cloudflare's proxy would answer for the nameservers.
  proxied = false
}

output "record_sets" {
  description = "The record sets created, as the dns-delegation module computes them."
  value       = module.delegation.record_sets
}
