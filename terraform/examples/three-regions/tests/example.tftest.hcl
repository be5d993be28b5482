# A plan of the whole example (nothing is applied): one hub, three members
# in pull mode each with its own join bundle, and the zone's delegation.
# tests/join holds join bundles as `meridian member add` writes them.

variables {
  kubeconfig_path = "tests/kubeconfig"
  hub_context     = "hub"
  member_contexts = { us-east = "us-east", eu-west = "eu-west", ap-south = "ap-south" }
  join_bundle_dir = "tests/join"
  image           = { repository = "registry.example/meridian", tag = "v1.2.3" }
  balancer_zone   = "infer.example.com"
  balancer_nameservers = [
    { name = "ns1", ipv4 = ["192.0.2.53"] },
    { name = "ns2", ipv4 = ["198.51.100.53"] },
  ]
}

# The plan passing at all shows each member got its own bundle: the member
# module refuses a bundle made for another member.
run "three_regions" {
  command = plan

  assert {
    condition     = output.members == { us-east = "pull", eu-west = "pull", ap-south = "pull" }
    error_message = "the example does not join three members in pull mode"
  }
  assert {
    condition     = strcontains(output.zone_file, "infer.example.com. 3600 IN NS ns2.infer.example.com.\n")
    error_message = "the zone file does not delegate the balancer's zone: ${nonsensitive(output.zone_file)}"
  }
}

run "regions_missing" {
  command = plan
  variables {
    member_contexts = { us-east = "us-east", eu-west = "eu-west" }
  }
  expect_failures = [var.member_contexts]
}

run "join_bundles_missing" {
  command = plan
  variables {
    join_bundle_dir = "tests/nowhere"
  }
  expect_failures = [var.join_bundle_dir]
}
