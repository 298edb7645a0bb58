{{/* Chart name, truncated to the 63 characters a label allows. */}}
{{- define "placement-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, unless the release name already contains the chart name. */}}
{{- define "placement-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "placement-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "placement-operator.labels" -}}
helm.sh/chart: {{ include "placement-operator.chart" . }}
{{ include "placement-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: placement-operator
{{- end }}

{{/* Labels that select the operator's pod; never change them after a release. */}}
{{- define "placement-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "placement-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "placement-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "placement-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "placement-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The rules the operator needs in a namespace (or cluster-wide), shared by the ClusterRole
and the namespaced Roles. Each verb is one the code uses; see docs/install.md "Permissions".
*/}}
{{- define "placement-operator.namespacedRules" -}}
# Framework: kopf watches the placements and patches them (finalizer, progress annotations).
# Application: placement_exists() reads another placement that holds the same Deployment.
- apiGroups: ["placement.runplacement.io"]
  resources: ["workloadplacements"]
  verbs: ["get", "list", "watch", "patch"]
# Framework: kopf writes status through the status subresource.
- apiGroups: ["placement.runplacement.io"]
  resources: ["workloadplacements/status"]
  verbs: ["patch"]
# Application: Jobs carry an owner reference with blockOwnerDeletion to their placement; API
# servers with OwnerReferencesPermissionEnforcement require this to set it.
- apiGroups: ["placement.runplacement.io"]
  resources: ["workloadplacements/finalizers"]
  verbs: ["update"]
# Framework: kopf posts Events about handlers; Application: decisions are Events.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# Application: a watch cache of Deployments (the targets' replicas, the holds by label);
# a fresh read after a conflict; scale down and restore with one merge patch each.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "patch"]
# Application: create each window's Job (and its server-side dry run), a watch cache of the
# placements' Jobs (by label) for their outcomes, delete finished ones beyond the history limits.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["create", "list", "watch", "delete"]
# Application: an HPA or a KEDA ScaledObject on the same Deployment blocks the placement
# (watch caches of both).
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "watch"]
# Application: async mode hands the Deployment to the placement's own ScaledObject: list
# (conflicts, and its own by label), watch (the watch cache), patch (server-side apply) and create (an apply that
# creates the object is authorized as create), delete (leaving async). Whether KEDA is
# installed comes from the discovery API, which needs no rule.
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["list", "watch", "create", "patch", "delete"]
{{- end }}
