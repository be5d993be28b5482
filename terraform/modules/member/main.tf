# Meridian's agent on a member cluster, from charts/meridian, and how it
# meets the hub: pull mode puts the join bundle into the Secret the agent
# exchanges for its own credential; push mode puts a kubeconfig for this
# cluster on the hub.

locals {
  join_secret = "meridian-hub-join"

  values = {
    image = var.image
    agent = {
      enabled     = true
      clusterName = var.name
      region      = var.region
      zone        = var.zone
      latitude    = var.latitude == null ? "" : tostring(var.latitude)
      longitude   = var.longitude == null ? "" : tostring(var.longitude)
      membership = {
        mode = var.membership
        pull = { joinSecret = local.join_secret }
      }
    }
  }
}

resource "kubernetes_secret" "join" {
  count = var.membership == "pull" ? 1 : 0
  metadata {
    name      = local.join_secret
    namespace = local.namespace
  }
  data = { "bundle.json" = var.join_bundle }
}

resource "kubernetes_secret" "kubeconfig" {
  count    = var.membership == "push" ? 1 : 0
  provider = kubernetes.hub
  metadata {
    name      = var.name
    namespace = var.hub_namespace
    labels    = { "sigs.k8s.io/multicluster-runtime-kubeconfig" = "true" }
  }
  data = { kubeconfig = var.member_kubeconfig }
}

resource "helm_release" "agent" {
  name      = "meridian-member"
  chart     = local.chart_path
  namespace = local.namespace
  values    = concat([yamlencode(local.values)], var.values)
  # helm lint with these values at plan time: a value the chart's schema
  # refuses fails the plan, naming it. Not in pull mode: the helm provider
  # (1.x) lints with no namespace, and the chart refuses a pull-mode agent
  # outside meridian-system (var.membership checks that instead).
  lint    = var.membership == "push"
  timeout = var.timeout
  # The agent starts with its join bundle in place.
  depends_on = [kubernetes_secret.join]
}
