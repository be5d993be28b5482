# Plans of the member module with the real providers (nothing is applied):
# pull mode (the join bundle into the agent's Secret), push mode (the
# kubeconfig Secret on the hub), and the refusals of bad variables.

provider "kubernetes" {}

provider "kubernetes" {
  alias = "hub"
}

variables {
  name        = "eu-west"
  region      = "eu-west"
  latitude    = 53.35
  longitude   = -6.26
  image       = { repository = "registry.example/meridian", tag = "v1.2.3" }
  join_bundle = "{\"server\":\"https://hub.example:6443\",\"member\":\"eu-west\",\"token\":\"bootstrap\",\"expires\":\"2030-01-01T00:00:00Z\"}"
}

run "pull" {
  command = plan

  assert {
    condition     = kubernetes_secret.join[0].metadata[0].name == "meridian-hub-join" && kubernetes_secret.join[0].metadata[0].namespace == "meridian-system"
    error_message = "the join bundle is not in meridian-system/meridian-hub-join"
  }
  assert {
    condition     = kubernetes_secret.join[0].data["bundle.json"] == var.join_bundle
    error_message = "the Secret's bundle.json is not the join bundle"
  }
  assert {
    condition     = length(kubernetes_secret.kubeconfig) == 0
    error_message = "pull mode put a kubeconfig on the hub"
  }
  assert {
    condition = yamldecode(helm_release.agent.values[0]).agent == {
      enabled     = true
      clusterName = "eu-west"
      region      = "eu-west"
      zone        = ""
      latitude    = "53.35"
      longitude   = "-6.26"
      membership  = { mode = "pull", pull = { joinSecret = "meridian-hub-join" } }
    }
    error_message = "the agent's values are not this member's in pull mode"
  }
}

run "push" {
  command = plan
  variables {
    membership        = "push"
    join_bundle       = null
    member_kubeconfig = "{\"apiVersion\":\"v1\",\"kind\":\"Config\",\"clusters\":[{\"name\":\"eu-west\",\"cluster\":{\"server\":\"https://eu-west.example:6443\"}}]}"
  }

  assert {
    condition     = length(kubernetes_secret.join) == 0
    error_message = "push mode made a join Secret"
  }
  assert {
    condition = (kubernetes_secret.kubeconfig[0].metadata[0].name == "eu-west"
      && kubernetes_secret.kubeconfig[0].metadata[0].namespace == "meridian-system"
      && kubernetes_secret.kubeconfig[0].metadata[0].labels["sigs.k8s.io/multicluster-runtime-kubeconfig"] == "true"
    && kubernetes_secret.kubeconfig[0].data["kubeconfig"] == var.member_kubeconfig)
    error_message = "the hub's kubeconfig Secret is not the one the hub engages members by"
  }
  assert {
    condition     = yamldecode(helm_release.agent.values[0]).agent.membership.mode == "push" && helm_release.agent.lint
    error_message = "the agent is not in push mode, or not linted"
  }
}

run "pull_without_bundle" {
  command = plan
  variables {
    join_bundle = null
  }
  expect_failures = [var.join_bundle]
}

run "bundle_of_another_member" {
  command = plan
  variables {
    name = "us-east"
  }
  expect_failures = [var.join_bundle]
}

run "push_without_kubeconfig" {
  command = plan
  variables {
    membership = "push"
  }
  expect_failures = [var.member_kubeconfig]
}

run "pull_outside_meridian_system" {
  command = plan
  variables {
    namespace = "fleet"
  }
  expect_failures = [var.membership]
}

run "bad_membership_and_coordinates" {
  command = plan
  variables {
    membership = "poll"
    latitude   = 91
  }
  expect_failures = [var.membership, var.latitude]
}
