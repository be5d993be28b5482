# The delegation (../) in the Google Cloud DNS managed zone of the parent
# zone.

terraform {
  required_version = ">= 1.9.0"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.0.0, < 8.0.0"
    }
  }
}

variable "parent_managed_zone" {
  description = "Name of the Cloud DNS managed zone of the parent zone (example.com for infer.example.com), e.g. example-com."
  type        = string
  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", var.parent_managed_zone))
    error_message = "parent_managed_zone must be a managed zone's name: lower-case letters, digits and '-', starting with a letter."
  }
}

variable "project" {
  description = "Google Cloud project of the managed zone; null takes the provider's project."
  type        = string
  default     = null
}

module "delegation" {
  source      = "../"
  zone        = var.zone
  nameservers = var.nameservers
  ttl         = var.ttl
}

resource "google_dns_record_set" "delegation" {
  for_each     = { for s in module.delegation.record_sets : "${s.name} ${s.type}" => s }
  project      = var.project
  managed_zone = var.parent_managed_zone
  # Cloud DNS takes absolute names, with the trailing dot.
  name    = "${each.value.name}."
  type    = each.value.type
  ttl     = each.value.ttl
  rrdatas = [for v in each.value.values : each.value.type == "NS" ? "${v}." : v]
}

output "record_sets" {
  description = "The record sets created, as the dns-delegation module computes them."
  value       = module.delegation.record_sets
}
