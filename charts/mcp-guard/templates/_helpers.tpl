{{- define "mcp-guard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
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

{{/* The image executor pods run unless a policy sets spec.executor.image. */}}
{{- define "mcp-guard.executorImage" -}}
{{- printf "%s:%s" .Values.executorImage.repository (.Values.executorImage.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The operator's user name in the API server's eyes (its ServiceAccount). */}}
{{- define "mcp-guard.operatorUser" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "mcp-guard.serviceAccountName" .) -}}
{{- end -}}

{{/* The ClusterRole the operator binds each executor ServiceAccount to (TokenReview only). */}}
{{- define "mcp-guard.tokenReviewRole" -}}
{{- printf "%s-tokenreview" (include "mcp-guard.fullname" .) -}}
{{- end -}}

{{/* The ClusterRole the operator binds, per policy with approvals, each binding proxy's ServiceAccount to (in the policy's namespace). */}}
{{- define "mcp-guard.approvalsRole" -}}
{{- printf "%s-approvals-proxy" (include "mcp-guard.fullname" .) -}}
{{- end -}}

{{/*
The operator's namespaced rules: in its ClusterRole, or (watchNamespaces set) in a Role per watched
namespace. templates/rbac.yaml says why each is needed.
*/}}
{{- define "mcp-guard.namespacedRules" -}}
- apiGroups: [mcpguard.io]
  resources: [mcpservers, mcpguardpolicies]
  verbs: [get, list, watch, patch]
- apiGroups: [mcpguard.io]
  resources: [mcpservers/status, mcpguardpolicies/status]
  verbs: [get, patch, update]
- apiGroups: [mcpguard.io]
  resources: [mcpservers/finalizers, mcpguardpolicies/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [configmaps, serviceaccounts, services]
  verbs: [get, list, watch, create, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [mcpguard.io]
  resources: [mcpapprovals]
  verbs: [get, list, watch, delete]
- apiGroups: [mcpguard.io]
  resources: [mcpapprovals/status]
  verbs: [get, update]
- apiGroups: [mcpguard.io]
  resources: [mcpapprovaljournals]
  verbs: [list, delete]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [rolebindings]
  verbs: [get, list, watch, create, patch, delete]
{{- end -}}

{{/*
CEL (templates/admission.yaml): whether `.o` (object or oldObject) carries a protected label or an executor
ServiceAccount; for matchConditions, which cannot use variables. The other keys are CEL snippets defined
there. (`[x].exists(l, ...)` names x: this CEL has no cel.bind.)
*/}}
{{- define "mcp-guard.cel.carries" -}}
([{{ printf .labelsOf .o }}].exists(l, l.exists(k, {{ printf .protectedKey "l" }})) || [{{ printf .specOf .o }}].exists(sp, [sp.?serviceAccountName.orValue(''), sp.?serviceAccount.orValue('')].exists(s, {{ .protectedSA }})))
{{- end -}}
