{{/* Names, labels and the pieces engine and web pods share. */}}

{{- define "ember.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ember.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ember.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ember.image" -}}
{{- if .Values.image.digest -}}
{{ printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else -}}
{{ printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end -}}
{{- end -}}

{{- define "ember.keysSecret" -}}
{{- .Values.auth.existingSecret | default (printf "%s-keys" (include "ember.fullname" .)) -}}
{{- end -}}

{{- define "ember.engineHeadless" -}}
{{- printf "%s-engine-headless" (include "ember.fullname" .) -}}
{{- end -}}

{{/* The engine URLs the web role forwards to: every StatefulSet pod, or the engine Service. */}}
{{- define "ember.engineUrls" -}}
{{- $full := include "ember.fullname" . -}}
{{- $urls := list -}}
{{- if eq .Values.engine.storage.mode "perPod" -}}
{{- range $i := until (int .Values.engine.replicas) -}}
{{- $urls = append $urls (printf "http://%s-engine-%d.%s.%s.svc:%d" $full $i (include "ember.engineHeadless" $) $.Release.Namespace (int $.Values.service.enginePort)) -}}
{{- end -}}
{{- else -}}
{{- $urls = append $urls (printf "http://%s-engine.%s.svc:%d" $full .Release.Namespace (int .Values.service.enginePort)) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}

{{/* Pod Security "restricted": non-root, fixed IDs, RuntimeDefault seccomp. */}}
{{- define "ember.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.uid }}
runAsGroup: {{ .Values.uid }}
fsGroup: {{ .Values.uid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "ember.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* An env var read from a Secret key. */}}
{{- define "ember.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
{{- end -}}

{{- define "ember.extraEnv" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* The probes both roles serve: /healthz (alive) and /readyz (can take requests). */}}
{{- define "ember.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: {{ .port }}}
  periodSeconds: 5
  timeoutSeconds: 5
  failureThreshold: {{ div .startupSeconds 5 }}
livenessProbe:
  httpGet: {path: /healthz, port: {{ .port }}}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
readinessProbe:
  httpGet: {path: /readyz, port: {{ .port }}}
  periodSeconds: 5
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}
