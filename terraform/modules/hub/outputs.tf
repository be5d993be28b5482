output "namespace" {
  description = "Namespace of the hub; members in push mode put their kubeconfig Secrets there."
  value       = helm_release.hub.namespace
}

output "release" {
  description = "Name of the Helm release."
  value       = helm_release.hub.name
}

output "balancer_zone" {
  description = "DNS zone the balancer answers for; the dns-delegation module's zone."
  value       = var.balancer_zone
}
