variable "kubeconfig_path" {
  description = "Path of the kubeconfig holding a context for the hub cluster and one per member cluster."
  type        = string
  default     = "~/.kube/config"
}

variable "hub_context" {
  description = "Kubeconfig context of the hub cluster, e.g. hub."
  type        = string
}

variable "member_contexts" {
  description = "Kubeconfig context of each member cluster, by region: { us-east = \"...\", eu-west = \"...\", ap-south = \"...\" }."
  type        = map(string)
  validation {
    condition     = length(setsubtract(["us-east", "eu-west", "ap-south"], keys(var.member_contexts))) == 0
    error_message = "member_contexts must name a context for each of us-east, eu-west and ap-south."
  }
}

variable "join_bundle_dir" {
  description = "Directory holding each member's join bundle as REGION.json, written on the hub by `meridian member add REGION --region REGION -o DIR/REGION.json` after the hub is applied."
  type        = string
  default     = "join"
  validation {
    condition     = alltrue([for r in ["us-east", "eu-west", "ap-south"] : fileexists("${var.join_bundle_dir}/${r}.json")])
    error_message = "A join bundle is missing: apply the hub first (tofu apply -target=module.hub), then on the hub run `meridian member add REGION --region REGION -o DIR/REGION.json` for us-east, eu-west and ap-south."
  }
}

variable "image" {
  description = "Meridian's image every cluster runs: repository, and tag or digest (sha256:..., as make image prints it)."
  type = object({
    repository = string
    tag        = optional(string, "")
    digest     = optional(string, "")
  })
}

variable "balancer_zone" {
  description = "DNS zone the global balancer answers for, e.g. infer.example.com."
  type        = string
}

variable "balancer_nameservers" {
  description = "The balancers' public names and addresses once their Services have them (kubectl -n meridian-system get service), two or more: the zone_file output then holds the records that delegate balancer_zone to them. Empty skips the delegation."
  type = list(object({
    name = string
    ipv4 = optional(list(string), [])
    ipv6 = optional(list(string), [])
  }))
  default = []
}

variable "chart_path" {
  description = "Path of Meridian's chart; null takes charts/meridian of this checkout."
  type        = string
  default     = null
}

variable "values" {
  description = "More chart values for every release, as YAML documents (charts/meridian/values.yaml lists them)."
  type        = list(string)
  default     = []
}
