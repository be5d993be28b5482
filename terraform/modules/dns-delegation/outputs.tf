output "record_sets" {
  description = "The delegation as record sets, one per name and type: {name, type, ttl, values}, names without the trailing dot."
  value       = local.record_sets
}

output "records" {
  description = "The delegation as single records, one per value (as Cloudflare holds them), keyed \"name type value\": {name, type, ttl, value}."
  value = { for r in flatten([for set in local.record_sets : [for v in set.values : {
    name = set.name, type = set.type, ttl = set.ttl, value = v
  }]]) : "${r.name} ${r.type} ${r.value}" => r }
}

output "nameservers" {
  description = "The nameservers' host names, the NS records' values."
  value       = [for s in local.servers : s.fqdn]
}

output "zone_file" {
  description = "The delegation in zone-file syntax, for a parent zone kept in a file or managed by hand."
  value = join("", [for set in local.record_sets : join("", [for v in set.values :
    format("%s. %d IN %s %s\n", set.name, set.ttl, set.type, set.type == "NS" ? "${v}." : v)
  ])])
}
