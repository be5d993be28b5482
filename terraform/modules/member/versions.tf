terraform {
  # Cross-variable validation and optional object attributes.
  required_version = ">= 1.9.0"

  required_providers {
    helm = {
      source  = "hashicorp/helm"
      version = ">= 1.3.2, < 3.0.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 1.13.4, < 3.0.0"
      # kubernetes: the member cluster; kubernetes.hub: the hub cluster,
      # which push mode puts the member's kubeconfig Secret on.
      configuration_aliases = [kubernetes.hub]
    }
  }
}
