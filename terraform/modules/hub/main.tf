# Meridian's hub (two replicas with leader election) and its global
# balancer, from charts/meridian, on the hub cluster.

locals {
  values = {
    image = var.image
    hub = {
      enabled  = true
      replicas = var.hub_replicas
    }
    glb = {
      enabled  = var.balancer_enabled
      replicas = var.balancer_replicas
      zone     = var.balancer_zone
      site     = var.balancer_site
      http     = { enabled = var.balancer_http }
    }
  }
}

resource "helm_release" "hub" {
  name      = "meridian"
  chart     = local.chart_path
  namespace = local.namespace
  values    = concat([yamlencode(local.values)], var.values)
  # helm lint with these values at plan time: a value the chart's schema
  # refuses fails the plan, naming it.
  lint    = true
  timeout = var.timeout
}
