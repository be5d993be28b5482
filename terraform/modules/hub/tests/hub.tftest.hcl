# Plans of the hub module with the real providers (nothing is applied): the
# chart's values the module derives, the namespace, and the refusals of bad
# variables. helm_release lints the chart with these values while planning.

variables {
  image         = { repository = "registry.example/meridian", digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
  balancer_zone = "infer.example.com"
}

run "hub_and_balancer" {
  command = plan

  assert {
    condition     = helm_release.hub.namespace == "meridian-system" && helm_release.hub.lint
    error_message = "the hub is not linted into meridian-system"
  }
  assert {
    condition     = kubernetes_namespace.this[0].metadata[0].labels["pod-security.kubernetes.io/enforce"] == "restricted"
    error_message = "the namespace does not enforce the restricted Pod Security profile"
  }
  assert {
    condition = yamldecode(helm_release.hub.values[0]) == {
      image = { repository = "registry.example/meridian", tag = "", digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
      hub   = { enabled = true, replicas = 2 }
      glb   = { enabled = true, replicas = 2, zone = "infer.example.com", site = "hub", http = { enabled = false } }
    }
    error_message = "the chart's values are not the hub's and the balancer's"
  }
}

run "existing_namespace_and_more_values" {
  command = plan
  variables {
    create_namespace = false
    namespace        = "fleet"
    balancer_enabled = false
    values           = [yamlencode({ logFormat = "text" })]
  }

  assert {
    condition     = length(kubernetes_namespace.this) == 0 && helm_release.hub.namespace == "fleet"
    error_message = "an existing namespace was created again, or not used"
  }
  assert {
    condition     = !yamldecode(helm_release.hub.values[0]).glb.enabled && yamldecode(helm_release.hub.values[1]).logFormat == "text"
    error_message = "the balancer is not off, or the caller's values do not follow the module's"
  }
}

run "bad_zone" {
  command = plan
  variables {
    balancer_zone = "Infer.Example.com."
  }
  expect_failures = [var.balancer_zone]
}

run "bad_digest" {
  command = plan
  variables {
    image = { repository = "registry.example/meridian", digest = "latest" }
  }
  expect_failures = [var.image]
}

run "no_replicas" {
  command = plan
  variables {
    hub_replicas = 0
  }
  expect_failures = [var.hub_replicas]
}
