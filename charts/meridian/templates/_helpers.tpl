{{/* Names: <release>-meridian, unless the release is already called meridian. */}}
{{- define "meridian.fullname" -}}
{{- if contains "meridian" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-meridian" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The name of one component's objects: (list $ "hub") */}}
{{- define "meridian.name" -}}
{{- printf "%s-%s" (include "meridian.fullname" (index . 0)) (index . 1) -}}
{{- end -}}

{{- define "meridian.selectorLabels" -}}
app.kubernetes.io/name: meridian
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "meridian.labels" -}}
{{ include "meridian.selectorLabels" . }}
app.kubernetes.io/version: {{ (index . 0).Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ (index . 0).Release.Service }}
helm.sh/chart: {{ printf "%s-%s" (index . 0).Chart.Name (index . 0).Chart.Version }}
{{- end -}}

{{- define "meridian.image" -}}
{{- $i := .Values.image -}}
{{- if $i.digest -}}
{{- printf "%s@%s" $i.repository $i.digest -}}
{{- else -}}
{{- printf "%s:%s" $i.repository (default .Chart.AppVersion $i.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The rules controller-gen generated from a component's RBAC markers
(files/rbac/<component>/role.yaml): (list $ "hub" "ClusterRole") for the
cluster-wide rules, (list $ "agent" "Role" "kube-system") for those of one
namespace; empty when there are none.
*/}}
{{- define "meridian.rules" -}}
{{- $root := index . 0 -}}
{{- $file := printf "files/rbac/%s/role.yaml" (index . 1) -}}
{{- range $doc := regexSplit "(?m)^---$" ($root.Files.Get $file) -1 -}}
{{- $o := fromYaml $doc -}}
{{- if and $o.kind (eq $o.kind (index $ 2)) (or (eq (len $) 3) (eq (default "" $o.metadata.namespace) (index $ 3))) -}}
{{- toYaml $o.rules -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The restricted Pod Security profile, for the pod and for its one
container; readOnlyRootFilesystem, so anything written goes to an emptyDir.
*/}}
{{- define "meridian.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "meridian.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* Flags every component takes alike. */}}
{{- define "meridian.commonArgs" -}}
- --log-format={{ .Values.logFormat }}
- --log-level={{ .Values.logLevel }}
{{- end -}}

{{/* --kubeconfig and its volume, where (list $ component) has a kubeconfigSecret. */}}
{{- define "meridian.kubeconfigArg" -}}
{{- if (index (index . 0).Values (index . 1)).kubeconfigSecret }}
- --kubeconfig=/etc/meridian/kubeconfig/kubeconfig
{{- end }}
{{- end -}}

{{- define "meridian.kubeconfigVolume" -}}
{{- with (index (index . 0).Values (index . 1)).kubeconfigSecret }}
- name: kubeconfig
  secret:
    secretName: {{ . }}
{{- end }}
{{- end -}}

{{- define "meridian.kubeconfigMount" -}}
{{- if (index (index . 0).Values (index . 1)).kubeconfigSecret }}
- name: kubeconfig
  mountPath: /etc/meridian/kubeconfig
  readOnly: true
{{- end }}
{{- end -}}

{{/* Gossip flags, for the agent and the balancer; nothing when join is empty. */}}
{{- define "meridian.gossipArgs" -}}
{{- $g := .Values.gossip -}}
{{- if $g.join }}
- --gossip-bind=0.0.0.0:{{ $g.port }}
- --gossip-preset={{ $g.preset }}
{{- range $g.join }}
- --gossip-join={{ . }}
{{- end }}
{{- with $g.advertise }}
- --gossip-advertise={{ . }}
{{- end }}
{{- if $g.keyringSecret }}
- --gossip-keyring=/etc/meridian/gossip/keyring
{{- else if $g.insecure }}
- --gossip-insecure
{{- else }}
{{- fail "gossip.join needs gossip.keyringSecret: a Secret with key \"keyring\" (kubectl create secret generic meridian-gossip --from-literal=keyring=$(head -c32 /dev/urandom | base64)); gossip.insecure=true gossips in plaintext, for debugging only" }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "meridian.gossipVolume" -}}
{{- if and .Values.gossip.join .Values.gossip.keyringSecret }}
- name: gossip-keyring
  secret:
    secretName: {{ .Values.gossip.keyringSecret }}
{{- end }}
{{- end -}}

{{- define "meridian.gossipMount" -}}
{{- if and .Values.gossip.join .Values.gossip.keyringSecret }}
- name: gossip-keyring
  mountPath: /etc/meridian/gossip
  readOnly: true
{{- end }}
{{- end -}}

{{- define "meridian.gossipPorts" -}}
{{- if .Values.gossip.join }}
- {name: gossip-tcp, containerPort: {{ .Values.gossip.port }}, protocol: TCP}
- {name: gossip-udp, containerPort: {{ .Values.gossip.port }}, protocol: UDP}
{{- end }}
{{- end -}}

{{/* Probes on the /metrics port every component serves. */}}
{{- define "meridian.probes" -}}
readinessProbe:
  httpGet: {path: /metrics, port: metrics}
  periodSeconds: 10
livenessProbe:
  httpGet: {path: /metrics, port: metrics}
  periodSeconds: 20
  failureThreshold: 3
{{- end -}}

{{/* Scheduling and resources of (list $ component). */}}
{{- define "meridian.scheduling" -}}
{{- $c := index (index . 0).Values (index . 1) -}}
{{- with $c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (index . 0).Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
