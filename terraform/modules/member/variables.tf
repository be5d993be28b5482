variable "name" {
  description = "This member's name in the fleet, as given to `meridian member add NAME` (pull mode) or as its kubeconfig Secret's name on the hub (push mode), e.g. eu-west."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.name))
    error_message = "name must be a DNS label: lower-case letters, digits and '-', at most 63 characters."
  }
}

variable "region" {
  description = "Region the member's cluster runs in, e.g. eu-west; placement and residency rules use it."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.region))
    error_message = "region must be a DNS label: lower-case letters, digits and '-'."
  }
}

variable "zone" {
  description = "Zone within the region, if any, e.g. eu-west-1a."
  type        = string
  default     = ""
}

variable "latitude" {
  description = "Latitude of the member's cluster in degrees, for proximity to demand; null leaves it to the region."
  type        = number
  default     = null
  validation {
    condition     = var.latitude == null || (var.latitude >= -90 && var.latitude <= 90)
    error_message = "latitude must be between -90 and 90."
  }
}

variable "longitude" {
  description = "Longitude of the member's cluster in degrees, for proximity to demand; null leaves it to the region."
  type        = number
  default     = null
  validation {
    condition     = var.longitude == null || (var.longitude >= -180 && var.longitude <= 180)
    error_message = "longitude must be between -180 and 180."
  }
}

variable "membership" {
  description = "How the hub and this member meet: pull (the agent reaches the hub with join_bundle; the hub holds no credential for the member) or push (the hub reaches the member with member_kubeconfig)."
  type        = string
  default     = "pull"
  validation {
    condition     = contains(["pull", "push"], var.membership)
    error_message = "membership must be pull or push."
  }
  validation {
    condition     = var.membership != "pull" || var.namespace == "meridian-system"
    error_message = "Pull mode needs namespace meridian-system: the agent keeps its join and credential Secrets there."
  }
}

variable "join_bundle" {
  description = "Pull mode: the join bundle `meridian member add NAME -o join.json` wrote on the hub (the file's content: file(\"join.json\")). Short-lived: apply before it expires."
  type        = string
  default     = null
  sensitive   = true
  validation {
    condition = var.membership != "pull" || alltrue([
      for k in ["server", "member", "token", "expires"] : try(jsondecode(var.join_bundle)[k] != "", false)
    ])
    error_message = "Pull mode needs join_bundle: the whole JSON that `meridian member add NAME` writes (server, member, token, expires)."
  }
  validation {
    condition     = var.membership != "pull" || try(jsondecode(var.join_bundle).member == var.name, false)
    error_message = "join_bundle was made for another member: run `meridian member add` with this module's name."
  }
}

variable "member_kubeconfig" {
  description = "Push mode: a kubeconfig the hub reaches this member's cluster with, for the ServiceAccount the chart creates for the hub (agent.membership.push.hubAccess) and its minimal ClusterRole, not an admin."
  type        = string
  default     = null
  sensitive   = true
  validation {
    condition     = var.membership != "push" || try(length(yamldecode(var.member_kubeconfig).clusters) > 0, false)
    error_message = "Push mode needs member_kubeconfig: a kubeconfig (YAML) with at least one cluster."
  }
}

variable "hub_namespace" {
  description = "Push mode: the hub's namespace (the hub module's namespace output), where the member's kubeconfig Secret goes."
  type        = string
  default     = "meridian-system"
}
