{{/* The release's objects are named after it (the StatefulSet's pods are the node names). */}}
{{- define "brigade.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "brigade.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "brigade.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "brigade.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "brigade.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "brigade.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if and .Values.gpu.enabled (not .Values.image.tag) -}}
{{- $tag = printf "%s-cuda" $tag -}}
{{- end -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{/* The Secret holding the Redis password, or "" for none. */}}
{{- define "brigade.redisSecret" -}}
{{- if .Values.redis.existingSecret -}}
{{- .Values.redis.existingSecret -}}
{{- else if .Values.redis.password -}}
{{- printf "%s-redis" (include "brigade.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "brigade.redisSecretKey" -}}
{{- if .Values.redis.existingSecret -}}{{ .Values.redis.existingSecretKey }}{{- else -}}redis-password{{- end -}}
{{- end -}}

{{- define "brigade.apiSecret" -}}
{{- if .Values.api.existingSecret -}}
{{- .Values.api.existingSecret -}}
{{- else if .Values.api.enabled -}}
{{- printf "%s-api-keys" (include "brigade.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "brigade.apiSecretKey" -}}
{{- if .Values.api.existingSecret -}}{{ .Values.api.existingSecretKey }}{{- else -}}api-keys{{- end -}}
{{- end -}}

{{- define "brigade.adminSecret" -}}
{{- if .Values.cluster.adminTokenExistingSecret -}}
{{- .Values.cluster.adminTokenExistingSecret -}}
{{- else if .Values.cluster.adminToken -}}
{{- printf "%s-admin" (include "brigade.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The query the autoscalers read: one cluster-wide number (docs/scaling.md),
     narrowed by autoscaling.signalLabels where one Prometheus sees several releases. */}}
{{- define "brigade.signalQuery" -}}
{{- $m := list -}}
{{- range $k, $v := .Values.autoscaling.signalLabels -}}
{{- $m = append $m (printf "%s=%q" $k $v) -}}
{{- end -}}
{{- if $m -}}
max(brigade_cluster_desired_replicas{ {{- join "," $m -}} })
{{- else -}}
max(brigade_cluster_desired_replicas)
{{- end -}}
{{- end -}}

{{/* The HPA behavior that adds no damping to brigade's signal (hpa.yaml, keda-scaledobject.yaml). */}}
{{- define "brigade.behavior" -}}
scaleUp:
  stabilizationWindowSeconds: 0
  selectPolicy: Max
  policies:
    - type: Percent
      value: 1000
      periodSeconds: 15
    - type: Pods
      value: {{ .Values.autoscaling.maxReplicas }}
      periodSeconds: 15
scaleDown:
  stabilizationWindowSeconds: 0
  selectPolicy: Max
  policies:
    - type: Percent
      value: 100
      periodSeconds: 15
{{- end -}}
