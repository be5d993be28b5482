# The delegation's records, computed without any provider.

variables {
  zone = "infer.example.com"
  nameservers = [
    { name = "ns1", ipv4 = ["192.0.2.53"] },
    { name = "ns2.infer.example.com", ipv4 = ["198.51.100.53"], ipv6 = ["2001:db8::53"] },
    { name = "ns.example.net" },
  ]
}

run "ns_and_glue" {
  command = plan

  assert {
    # Compared as JSON: a list and a tuple of the same values are not equal.
    condition = jsonencode(output.record_sets) == jsonencode([
      { name = "infer.example.com", type = "NS", ttl = 3600, values = ["ns1.infer.example.com", "ns2.infer.example.com", "ns.example.net"] },
      { name = "ns1.infer.example.com", type = "A", ttl = 3600, values = ["192.0.2.53"] },
      { name = "ns2.infer.example.com", type = "A", ttl = 3600, values = ["198.51.100.53"] },
      { name = "ns2.infer.example.com", type = "AAAA", ttl = 3600, values = ["2001:db8::53"] },
    ])
    error_message = "the record sets are not NS for the zone and glue for the nameservers inside it"
  }
  assert {
    condition     = length(output.records) == 6 && output.records["ns2.infer.example.com AAAA 2001:db8::53"].value == "2001:db8::53"
    error_message = "the single records are not one per value"
  }
  assert {
    condition     = output.zone_file == <<-EOT
      infer.example.com. 3600 IN NS ns1.infer.example.com.
      infer.example.com. 3600 IN NS ns2.infer.example.com.
      infer.example.com. 3600 IN NS ns.example.net.
      ns1.infer.example.com. 3600 IN A 192.0.2.53
      ns2.infer.example.com. 3600 IN A 198.51.100.53
      ns2.infer.example.com. 3600 IN AAAA 2001:db8::53
      EOT
    error_message = "the zone file is not the delegation: ${output.zone_file}"
  }
}

run "one_nameserver" {
  command = plan
  variables {
    nameservers = [{ name = "ns1", ipv4 = ["192.0.2.53"] }]
  }
  expect_failures = [var.nameservers]
}

run "no_glue" {
  command = plan
  variables {
    nameservers = [{ name = "ns1" }, { name = "ns.example.net" }]
  }
  expect_failures = [var.nameservers]
}

run "bad_addresses" {
  command = plan
  variables {
    nameservers = [{ name = "ns1", ipv4 = ["300.0.2.53"] }, { name = "ns2", ipv4 = ["2001:db8::53"] }]
  }
  expect_failures = [var.nameservers]
}

run "bad_zone_and_ttl" {
  command = plan
  variables {
    zone = "infer"
    ttl  = 30
  }
  expect_failures = [var.zone, var.ttl]
}
