{{/*
The balancer's security flags (README.md, Security): HTTPS on the front,
mutual TLS to the clusters, the auth door, X-Forwarded-For trust, DNS
response rate limiting, trusted ECS resolvers and DNSSEC. Each Secret is
mounted as a directory (never subPath), so a renewed certificate, an
edited key file or a rotated DNSSEC key reaches the pod without a restart.
*/}}
{{- define "meridian.glbSecurityArgs" -}}
{{- $g := .Values.glb -}}
{{- $a := $g.auth -}}
{{- $keys := or $a.apiKeys $a.tenants $a.jwks -}}
{{- if and (or $g.tls.secretName $a.secretName $a.jwksURL) (not $g.http.enabled) }}
{{- fail "glb.tls and glb.auth are the HTTP front's: set glb.http.enabled=true" }}
{{- end }}
{{- if and $keys (not $a.secretName) }}
{{- fail "glb.auth.apiKeys, .tenants and .jwks name keys of glb.auth.secretName: set it to the Secret holding them" }}
{{- end }}
{{- if and $a.secretName (not $keys) }}
{{- fail "glb.auth.secretName: name the keys it holds in glb.auth.apiKeys, glb.auth.tenants or glb.auth.jwks" }}
{{- end }}
{{- if and $a.jwks $a.jwksURL }}
{{- fail "glb.auth.jwks and glb.auth.jwksURL: give one JSON Web Key Set, a key of the Secret or the identity provider's URL" }}
{{- end }}
{{- if and (or $a.jwks $a.jwksURL) (not (and $a.issuer $a.audiences)) }}
{{- fail "a JSON Web Key Set (glb.auth.jwks or glb.auth.jwksURL) needs glb.auth.issuer and glb.auth.audiences: the iss and an aud every token must carry" }}
{{- end }}
{{- if $g.tls.secretName }}
- --tls-dir=/etc/meridian/tls
{{- end }}
{{- if $g.upstreamTLS.secretName }}
- --upstream-tls-dir=/etc/meridian/upstream-tls
{{- end }}
{{- with $g.upstreamTLS.serverName }}
- --upstream-tls-server-name={{ . }}
{{- end }}
{{- with $a.apiKeys }}
- --auth-api-keys-file=/etc/meridian/auth/{{ . }}
{{- end }}
{{- with $a.tenants }}
- --auth-tenants-file=/etc/meridian/auth/{{ . }}
{{- end }}
{{- with $a.jwks }}
- --auth-jwks-file=/etc/meridian/auth/{{ . }}
{{- end }}
{{- with $a.jwksURL }}
- --auth-jwks-url={{ . }}
{{- end }}
{{- with $a.issuer }}
- --auth-issuer={{ . }}
{{- end }}
{{- range $a.audiences }}
- --auth-audience={{ . }}
{{- end }}
{{- with $g.trustedProxyHops }}
- --trusted-proxy-hops={{ int64 . }}
{{- end }}
{{- range $g.trustedProxies }}
- --trusted-proxies={{ . }}
{{- end }}
{{- $r := $g.dns.rrl }}
{{- if not $r.enabled }}
- --dns-rrl=false
{{- else }}
{{- with $r.responsesPerSecond }}
- --dns-rrl-responses-per-second={{ . }}
{{- end }}
{{- range $flag, $v := dict "burst" $r.burst "slip" $r.slip "ipv4-prefix" $r.ipv4Prefix "ipv6-prefix" $r.ipv6Prefix "table-size" $r.tableSize }}
{{- if not (kindIs "invalid" $v) }}
- --dns-rrl-{{ $flag }}={{ int64 $v }}
{{- end }}
{{- end }}
{{- with $r.window }}
- --dns-rrl-window={{ . }}
{{- end }}
{{- range $r.exempt }}
- --dns-rrl-exempt={{ . }}
{{- end }}
{{- end }}
{{- range $g.dns.ecsTrustedResolvers }}
- --dns-ecs-trusted-resolvers={{ . }}
{{- end }}
{{- $d := $g.dns.dnssec }}
{{- if and $d.secretName (not $d.keys) }}
{{- fail "glb.dns.dnssec.secretName: list its keys in glb.dns.dnssec.keys (each <name> with <name>.key and <name>.private in the Secret)" }}
{{- end }}
{{- if and $d.keys (not $d.secretName) }}
{{- fail "glb.dns.dnssec.keys are in glb.dns.dnssec.secretName: set it to the Secret holding them" }}
{{- end }}
{{- range $d.keys }}
- --dnssec-key-file=/etc/meridian/dnssec/{{ . }}
{{- end }}
{{- end -}}

{{/* The Secrets the flags above read, as (name, Secret, directory) rows. */}}
{{- define "meridian.glbSecrets" -}}
{{- $g := .Values.glb -}}
{{- $rows := list }}
{{- with $g.tls.secretName }}{{ $rows = append $rows (list "tls" . "/etc/meridian/tls") }}{{ end }}
{{- with $g.upstreamTLS.secretName }}{{ $rows = append $rows (list "upstream-tls" . "/etc/meridian/upstream-tls") }}{{ end }}
{{- with $g.auth.secretName }}{{ $rows = append $rows (list "auth" . "/etc/meridian/auth") }}{{ end }}
{{- with $g.dns.dnssec.secretName }}{{ $rows = append $rows (list "dnssec" . "/etc/meridian/dnssec") }}{{ end }}
{{- toJson $rows }}
{{- end -}}

{{/* Read only by the pod's group (fsGroup): they hold private keys. */}}
{{- define "meridian.glbSecretVolumes" -}}
{{- range fromJsonArray (include "meridian.glbSecrets" .) }}
- name: {{ index . 0 }}
  secret:
    secretName: {{ index . 1 }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "meridian.glbSecretMounts" -}}
{{- range fromJsonArray (include "meridian.glbSecrets" .) }}
- {name: {{ index . 0 }}, mountPath: {{ index . 2 }}, readOnly: true}
{{- end }}
{{- end -}}
