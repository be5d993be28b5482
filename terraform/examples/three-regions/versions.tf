terraform {
  # Provider for_each (one provider configuration per region) is
  # OpenTofu's, from 1.9; the modules themselves also work with Terraform.
  required_version = ">= 1.9.0"

  required_providers {
    helm = {
      source  = "hashicorp/helm"
      version = ">= 1.3.2, < 3.0.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 1.13.4, < 3.0.0"
    }
  }
}
