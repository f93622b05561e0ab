{{- define "mcp-guard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mcp-guard.labels" -}}
app.kubernetes.io/name: mcp-guard-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "mcp-guard.selectorLabels" -}}
app.kubernetes.io/name: mcp-guard-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mcp-guard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mcp-guard.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}
