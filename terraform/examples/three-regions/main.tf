# One hub (with the global balancer) and three members in pull mode, each
# cluster reached through its own kubeconfig context; the delegation of the
# balancer's zone as zone-file lines for the parent zone.

locals {
  # The regions of `meridian up`, where their data centres are.
  regions = {
    us-east  = { latitude = 39.04, longitude = -77.49 }
    eu-west  = { latitude = 53.35, longitude = -6.26 }
    ap-south = { latitude = 19.08, longitude = 72.88 }
  }
  members = toset(keys(local.regions))
}

provider "kubernetes" {
  alias          = "hub"
  config_path    = var.kubeconfig_path
  config_context = var.hub_context
}

provider "helm" {
  alias = "hub"
  kubernetes {
    config_path    = var.kubeconfig_path
    config_context = var.hub_context
  }
}

# One provider configuration per region, and one member per element of
# local.members: to remove a member, drop it from local.members and apply
# (its provider destroys it), then from local.regions.
provider "kubernetes" {
  alias          = "member"
  for_each       = local.regions
  config_path    = var.kubeconfig_path
  config_context = var.member_contexts[each.key]
}

provider "helm" {
  alias    = "member"
  for_each = local.regions
  kubernetes {
    config_path    = var.kubeconfig_path
    config_context = var.member_contexts[each.key]
  }
}

module "hub" {
  source        = "../../modules/hub"
  providers     = { kubernetes = kubernetes.hub, helm = helm.hub }
  image         = var.image
  balancer_zone = var.balancer_zone
  chart_path    = var.chart_path
  values        = var.values
}

module "member" {
  source   = "../../modules/member"
  for_each = local.members
  providers = {
    kubernetes     = kubernetes.member[each.key]
    kubernetes.hub = kubernetes.hub
    helm           = helm.member[each.key]
  }
  name        = each.key
  region      = each.key
  latitude    = local.regions[each.key].latitude
  longitude   = local.regions[each.key].longitude
  join_bundle = file("${var.join_bundle_dir}/${each.key}.json")
  image       = var.image
  chart_path  = var.chart_path
  values      = var.values
}

module "dns" {
  source      = "../../modules/dns-delegation"
  count       = length(var.balancer_nameservers) > 0 ? 1 : 0
  zone        = module.hub.balancer_zone
  nameservers = var.balancer_nameservers
}
