variable "balancer_zone" {
  description = "DNS zone the global balancer answers for, e.g. infer.example.com; delegate it to the balancer with the dns-delegation module."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.balancer_zone))
    error_message = "balancer_zone must be a lower-case DNS name without the trailing dot, e.g. infer.example.com."
  }
}

variable "balancer_site" {
  description = "Name of this point of presence among the fleet's balancers (its replicas are <site>-0, <site>-1, ...), e.g. hub-eu."
  type        = string
  default     = "hub"
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$", var.balancer_site))
    error_message = "balancer_site must be a DNS label of at most 42 characters: lower-case letters, digits and '-'."
  }
}

variable "balancer_enabled" {
  description = "Run the global balancer (DNS and, with balancer_http, the HTTP front) beside the hub."
  type        = bool
  default     = true
}

variable "balancer_http" {
  description = "Serve the balancer's HTTP front too, not only DNS."
  type        = bool
  default     = false
}

variable "balancer_replicas" {
  description = "Replicas of the balancer; each answers DNS on its own."
  type        = number
  default     = 2
  validation {
    condition     = var.balancer_replicas >= 1 && floor(var.balancer_replicas) == var.balancer_replicas
    error_message = "balancer_replicas must be a whole number of at least 1."
  }
}

variable "hub_replicas" {
  description = "Replicas of the hub; more than one elect a leader, the others wait to take over."
  type        = number
  default     = 2
  validation {
    condition     = var.hub_replicas >= 1 && floor(var.hub_replicas) == var.hub_replicas
    error_message = "hub_replicas must be a whole number of at least 1."
  }
}
