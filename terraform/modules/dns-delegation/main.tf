# The records that delegate the balancer's zone from its parent zone: NS
# at the zone's name, and glue (A, AAAA) for the nameservers inside the
# zone. This module computes them and creates nothing; route53/,
# cloudflare/ and google-cloud-dns/ create them in those DNS services.

locals {
  servers = [for ns in var.nameservers : merge(ns, {
    fqdn = strcontains(ns.name, ".") ? ns.name : "${ns.name}.${var.zone}"
  })]
  glued = [for s in local.servers : s if s.fqdn == var.zone || endswith(s.fqdn, ".${var.zone}")]

  # One set per name and type, as Route 53 and Cloud DNS hold them.
  record_sets = concat(
    [{ name = var.zone, type = "NS", ttl = var.ttl, values = [for s in local.servers : s.fqdn] }],
    [for s in local.glued : { name = s.fqdn, type = "A", ttl = var.ttl, values = s.ipv4 } if length(s.ipv4) > 0],
    [for s in local.glued : { name = s.fqdn, type = "AAAA", ttl = var.ttl, values = s.ipv6 } if length(s.ipv6) > 0],
  )
}
