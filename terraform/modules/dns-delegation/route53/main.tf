# The delegation (../) in the Route 53 hosted zone of the parent zone.

terraform {
  required_version = ">= 1.9.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0.0, < 7.0.0"
    }
  }
}

variable "parent_zone_id" {
  description = "ID of the Route 53 hosted zone of the parent zone (example.com for infer.example.com), e.g. Z0123456789ABCDEFGHIJ."
  type        = string
  validation {
    condition     = can(regex("^Z[0-9A-Z]{1,31}$", var.parent_zone_id))
    error_message = "parent_zone_id must be a Route 53 hosted zone ID: Z followed by upper-case letters and digits."
  }
}

module "delegation" {
  source      = "../"
  zone        = var.zone
  nameservers = var.nameservers
  ttl         = var.ttl
}

resource "aws_route53_record" "delegation" {
  for_each = { for s in module.delegation.record_sets : "${s.name} ${s.type}" => s }
  zone_id  = var.parent_zone_id
  name     = each.value.name
  type     = each.value.type
  ttl      = each.value.ttl
  records  = each.value.values
}

output "record_sets" {
  description = "The record sets created, as the dns-delegation module computes them."
  value       = module.delegation.record_sets
}
