output "name" {
  description = "The member's name."
  value       = var.name
}

output "namespace" {
  description = "Namespace of the agent, and of its join and credential Secrets in pull mode."
  value       = helm_release.agent.namespace
}

output "membership" {
  description = "pull or push."
  value       = var.membership
}
