variable "zone" {
  description = "The balancer's DNS zone (the hub module's balancer_zone), delegated from its parent zone, e.g. infer.example.com."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.zone))
    error_message = "zone must be a lower-case DNS name without the trailing dot, e.g. infer.example.com."
  }
}

variable "nameservers" {
  description = "The balancers the zone is delegated to, two or more on public addresses: name is a label inside the zone (ns1, which needs its addresses for glue records) or a host name outside it (ns1.example.net, no glue); ipv4 and ipv6 list its addresses."
  type = list(object({
    name = string
    ipv4 = optional(list(string), [])
    ipv6 = optional(list(string), [])
  }))
  validation {
    condition     = length(var.nameservers) >= 2 && length(distinct([for ns in var.nameservers : ns.name])) == length(var.nameservers)
    error_message = "nameservers must list two or more balancers, each name once: a delegation to one server fails with it."
  }
  validation {
    condition = alltrue([for ns in var.nameservers :
      can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$", ns.name))
    ])
    error_message = "Each nameserver name must be a DNS label (ns1) or a host name (ns1.example.net), lower-case, without the trailing dot."
  }
  validation {
    condition = alltrue(flatten([for ns in var.nameservers : concat(
      [for a in ns.ipv4 : can(regex("^(\\d{1,3}\\.){3}\\d{1,3}$", a)) && can(cidrhost("${a}/32", 0))],
      [for a in ns.ipv6 : strcontains(a, ":") && can(cidrhost("${a}/128", 0))],
    )]))
    error_message = "Each nameserver's ipv4 must hold IPv4 addresses and ipv6 IPv6 addresses (no prefix lengths)."
  }
  validation {
    condition = alltrue([for ns in var.nameservers :
      length(ns.ipv4) + length(ns.ipv6) > 0
      if !strcontains(ns.name, ".") || endswith(ns.name, ".${var.zone}")
    ])
    error_message = "A nameserver inside the zone needs its addresses (ipv4 or ipv6): the parent zone serves them as glue, without which the name cannot be resolved."
  }
}

variable "ttl" {
  description = "TTL in seconds of the NS and glue records."
  type        = number
  default     = 3600
  validation {
    condition     = var.ttl >= 60 && var.ttl <= 172800 && floor(var.ttl) == var.ttl
    error_message = "ttl must be a whole number of seconds between 60 and 172800 (two days)."
  }
}
