output "hub_namespace" {
  description = "Namespace of the hub on the hub cluster."
  value       = module.hub.namespace
}

output "members" {
  description = "The members and how each meets the hub."
  value       = { for k, m in module.member : k => m.membership }
}

output "zone_file" {
  description = "The records that delegate the balancer's zone, to add to its parent zone (empty until balancer_nameservers is set)."
  value       = one(module.dns[*].zone_file)
}
