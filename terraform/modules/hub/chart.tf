# The chart's inputs and namespace, shared by the hub and member modules:
# this file is modules/hub/chart.tf, and modules/member/chart.tf is a
# symbolic link to it.

variable "image" {
  description = "Meridian's image (make image builds it; push it to a registry the cluster pulls from): repository, and tag or digest (sha256:..., as make image prints it; it wins over tag). An empty tag takes the chart's appVersion."
  type = object({
    repository = string
    tag        = optional(string, "")
    digest     = optional(string, "")
  })
  validation {
    condition     = can(regex("^[a-z0-9]+([._/:-][a-z0-9]+)*$", var.image.repository)) && (var.image.digest == "" || can(regex("^sha256:[0-9a-f]{64}$", var.image.digest)))
    error_message = "image.repository must be a repository without tag or digest (ghcr.io/example/meridian), image.digest empty or sha256: and 64 hex digits."
  }
}

variable "namespace" {
  description = "Namespace of the release (the hub's: where members in push mode put their kubeconfig Secrets; the agent's: where its join and credential Secrets are)."
  type        = string
  default     = "meridian-system"
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS label: lower-case letters, digits and '-', at most 63 characters."
  }
}

variable "create_namespace" {
  description = "Create the namespace (labelled for the restricted Pod Security profile); false installs into an existing one."
  type        = bool
  default     = true
}

variable "chart_path" {
  description = "Path of Meridian's chart; null takes charts/meridian of the checkout this module is in."
  type        = string
  default     = null
}

variable "values" {
  description = "More values for the chart, as YAML documents applied after the module's own (charts/meridian/values.yaml lists them), e.g. [yamlencode({ gossip = { join = [\"...\"] } })]."
  type        = list(string)
  default     = []
}

variable "timeout" {
  description = "Seconds to wait for the release's pods to become ready."
  type        = number
  default     = 300
  validation {
    condition     = var.timeout > 0
    error_message = "timeout must be a positive number of seconds."
  }
}

locals {
  chart_path = coalesce(var.chart_path, "${path.module}/../../../charts/meridian")
}

resource "kubernetes_namespace" "this" {
  count = var.create_namespace ? 1 : 0
  metadata {
    name   = var.namespace
    labels = { "pod-security.kubernetes.io/enforce" = "restricted" }
  }
}

locals {
  namespace = var.create_namespace ? kubernetes_namespace.this[0].metadata[0].name : var.namespace
}
