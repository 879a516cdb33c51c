{{/* Names, labels, addresses and the flags every kvtier container shares. */}}

{{- define "kvtier.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kvtier.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else if contains (include "kvtier.name" .) .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "kvtier.name" .) | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The objects' names: the coordinator's API Service and Deployment, the registry Service
shards register through, the shards' StatefulSet and headless Service. */}}
{{- define "kvtier.coordinator" -}}{{ include "kvtier.fullname" . }}-coordinator{{- end }}
{{- define "kvtier.registry" -}}{{ include "kvtier.fullname" . }}-registry{{- end }}
{{- define "kvtier.shard" -}}{{ include "kvtier.fullname" . }}-shard{{- end }}
{{- define "kvtier.credentials" -}}
{{- .Values.auth.existingSecret | default (printf "%s-credentials" (include "kvtier.fullname" .)) }}
{{- end }}
{{- define "kvtier.serviceAccount" -}}
{{- if .Values.serviceAccount.create }}
{{- .Values.serviceAccount.name | default (include "kvtier.fullname" .) }}
{{- else }}
{{- .Values.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{/* host:port of a Service of the release, by its DNS name. */}}
{{- define "kvtier.serviceAddress" -}}
{{- printf "%s.%s.svc.%s:%d" .name .root.Release.Namespace .root.Values.clusterDomain (int .port) }}
{{- end }}

{{- define "kvtier.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kvtier.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kvtier.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "kvtier.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* image: "repository:tag" of a component ("coordinator" or "shard"). */}}
{{- define "kvtier.image" -}}
{{- $image := index .root.Values.image .component }}
{{- printf "%s:%s" $image.repository ($image.tag | default .root.Chart.AppVersion) }}
{{- end }}

{{/* The --model flag's value. */}}
{{- define "kvtier.modelFlag" -}}
{{- $m := .Values.model }}
{{- $parts := list (printf "name=%s" $m.name) }}
{{- if $m.version }}{{ $parts = append $parts (printf "version=%s" $m.version) }}{{ end }}
{{- $parts = append $parts (printf "layers=%d,kv_heads=%d,q_heads=%d,head_dim=%d" (int $m.layers) (int $m.kvHeads) (int $m.qHeads) (int $m.headDim)) }}
{{- $parts = append $parts (printf "dtype=%s,block_size=%d,blocks=%d,shards=%d" $m.dtype (int $m.blockSize) (int64 $m.blocks) (int $m.shards)) }}
{{- join "," $parts }}
{{- end }}

{{/* Refuses a model the servers would refuse, or one a shard's pool cannot hold, naming the
value (the schema checks each value alone; these relate them). */}}
{{- define "kvtier.checkModel" -}}
{{- $m := .Values.model }}
{{- if ne 0 (mod (int $m.qHeads) (int $m.kvHeads)) }}
{{- fail (printf "model.qHeads: expected a multiple of model.kvHeads (%d), got %d" (int $m.kvHeads) (int $m.qHeads)) }}
{{- end }}
{{- if gt (int $m.shards) (int $m.kvHeads) }}
{{- fail (printf "model.shards: expected at most model.kvHeads (%d) head ranges, got %d" (int $m.kvHeads) (int $m.shards)) }}
{{- end }}
{{- $heads := div (add (int $m.kvHeads) (int $m.shards) -1) (int $m.shards) }}
{{- $dtypeBytes := get (dict "fp32" 4 "fp16" 2 "bf16" 2) $m.dtype }}
{{- $slotBytes := mul 2 (int64 $m.layers) (int64 $m.blocks) (int64 $m.blockSize) $heads (int64 $m.headDim) $dtypeBytes }}
{{- $capacity := mulf .Values.shard.capacityGiB 1073741824.0 }}
{{- if gt (float64 $slotBytes) $capacity }}
{{- fail (printf "shard.capacityGiB: %v GiB cannot hold a head range of the model (%d bytes: 2 x %d layers x %d blocks x %d tokens x %d heads x %d x %s): raise it or lower model.blocks" .Values.shard.capacityGiB $slotBytes (int $m.layers) (int64 $m.blocks) (int $m.blockSize) $heads (int $m.headDim) $m.dtype) }}
{{- end }}
{{- end }}

{{/* The args that secure a container: the credentials file and a token for servers, a token
for clients, and TLS. Pass `root` and `token` (a key of the credentials Secret, mounted at
/etc/kvtier/auth) and `server` (true for the coordinator and shards). */}}
{{- define "kvtier.securityArgs" -}}
{{- $v := .root.Values }}
{{- if $v.auth.enabled }}
{{- if .server }}
- --credentials_file=/etc/kvtier/auth/credentials
{{- end }}
- --token_file=/etc/kvtier/auth/{{ .token }}
{{- end }}
{{- if $v.tls.enabled }}
- --tls_ca_file=/etc/kvtier/tls/ca.crt
{{- if or .server $v.tls.requireClientCert }}
- --tls_cert_file=/etc/kvtier/tls/tls.crt
- --tls_key_file=/etc/kvtier/tls/tls.key
{{- end }}
{{- if and .server $v.tls.requireClientCert }}
- --tls_require_client_cert
{{- end }}
{{- end }}
{{- end }}

{{/* The volumeMounts matching kvtier.securityVolumes, and /tmp. */}}
{{- define "kvtier.securityMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .root.Values.auth.enabled }}
- name: auth
  mountPath: /etc/kvtier/auth
  readOnly: true
{{- end }}
{{- if .root.Values.tls.enabled }}
- name: tls
  mountPath: /etc/kvtier/tls
  readOnly: true
{{- end }}
{{- end }}

{{/* The volumes: /tmp, and of the credentials Secret only the files this container reads
(`server`: the credentials file; `token`: its own token); the TLS Secret. */}}
{{- define "kvtier.securityVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if .root.Values.auth.enabled }}
- name: auth
  secret:
    secretName: {{ include "kvtier.credentials" .root }}
    defaultMode: 0440
    items:
{{- if .server }}
      - key: credentials
        path: credentials
{{- end }}
      - key: {{ .token }}
        path: {{ .token }}
{{- end }}
{{- if .root.Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ .root.Values.tls.existingSecret }}
    defaultMode: 0440
    items:
      - key: ca.crt
        path: ca.crt
{{- if or .server .root.Values.tls.requireClientCert }}
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}
{{- end }}
{{- end }}

{{/* A gRPC probe on a health service name; Kubernetes' gRPC probes speak plaintext only, so
with TLS it is a TCP connect to the port instead. */}}
{{- define "kvtier.probe" -}}
{{- if .root.Values.tls.enabled }}
tcpSocket:
  port: {{ .port }}
{{- else }}
grpc:
  port: {{ .port }}
  service: {{ .service }}
{{- end }}
periodSeconds: {{ .period }}
failureThreshold: 3
timeoutSeconds: 2
{{- end }}

{{- define "kvtier.pullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}
