{{/* Names ------------------------------------------------------------------------------- */}}

{{- define "modelwerk.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name: release name, plus the chart name unless the release name contains it. */}}
{{- define "modelwerk.fullname" -}}
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

{{/* Cluster-scoped objects carry the release namespace, so that releases of the same name in
     different namespaces (e.g. one per team, each with watchNamespaces) do not collide. */}}
{{- define "modelwerk.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "modelwerk.fullname" .) }}
{{- end }}

{{- define "modelwerk.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modelwerk.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modelwerk.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "modelwerk.webhookSecretName" -}}
{{- default (printf "%s-webhook" (include "modelwerk.fullname" .)) .Values.webhook.existingSecret }}
{{- end }}

{{/* Labels ------------------------------------------------------------------------------ */}}

{{- define "modelwerk.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelwerk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "modelwerk.labels" -}}
helm.sh/chart: {{ include "modelwerk.chart" . }}
{{ include "modelwerk.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: modelwerk
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Images ------------------------------------------------------------------------------ */}}

{{- define "modelwerk.imageRef" -}}
{{- $image := index . 0 }}
{{- $appVersion := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $appVersion $image.tag) }}
{{- end }}
{{- end }}

{{- define "modelwerk.image" -}}
{{- include "modelwerk.imageRef" (list .Values.image .Chart.AppVersion) }}
{{- end }}

{{- define "modelwerk.servingImage" -}}
{{- include "modelwerk.imageRef" (list .Values.servingImage .Chart.AppVersion) }}
{{- end }}

{{/* RBAC ----------------------------------------------------------------------------------
     What the operator does in the namespaces it watches, generated from the table of kinds
     (operator/modelwerk/kinds.py) by hack/gen-chart.py: watches (get/list/watch), server-side
     apply (patch; create for new objects), status patches, Jobs and TrainingRuns created,
     pruned children and expired TrainingRuns deleted, Events posted. Used as a ClusterRole
     (cluster-wide) or as a Role in each watched namespace. Nothing on Secrets, ConfigMaps,
     ServiceAccounts, pods/exec or pod creation: the operator never touches them. */}}
{{- define "modelwerk.namespacedRules" -}}
{{- $rules := .Files.Get "files/rbac-namespaced.yaml" }}
{{- if not $rules }}
{{- fail "files/rbac-namespaced.yaml is missing from the chart (run hack/gen-chart.py)" }}
{{- end }}
{{- $rules }}
{{- if .Values.jobSet.enabled }}
{{- /* JobSets of distributed runs: granted only when the engine is enabled. */}}
{{ .Files.Get "files/rbac-namespaced-jobset.yaml" }}
{{- end }}
{{- if .Values.kueue.enabled }}
{{- /* Kueue Workloads of queued runs: granted only when Kueue support is enabled. */}}
{{ .Files.Get "files/rbac-namespaced-kueue.yaml" }}
{{- end }}
{{- end }}

{{/* Inherently cluster-scoped: the operator checks whether the Seldon and Prometheus Operator
     CRDs are installed; cluster-wide, kopf also scans and watches CRDs (with watchNamespaces it
     does not: the chart passes exact names). */}}
{{- define "modelwerk.crdRules" -}}
{{- $file := ternary "files/rbac-cluster-watchnamespaces.yaml" "files/rbac-cluster.yaml" (not (empty .Values.watchNamespaces)) }}
{{- $rules := .Files.Get $file }}
{{- if not $rules }}
{{- fail (printf "%s is missing from the chart (run hack/gen-chart.py)" $file) }}
{{- end }}
{{- $rules }}
{{- end }}
