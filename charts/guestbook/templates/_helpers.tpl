{{/*
The chart's name, or nameOverride.
*/}}
{{- define "guestbook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name: release-chart, unless the release name already contains the chart's name.
Cut to 63 characters, as Kubernetes names must be.
*/}}
{{- define "guestbook.fullname" -}}
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

{{- define "guestbook.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "guestbook.labels" -}}
helm.sh/chart: {{ include "guestbook.chart" . }}
app.kubernetes.io/name: {{ include "guestbook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels of one component: include "guestbook.selectorLabels" (list . "web").
*/}}
{{- define "guestbook.selectorLabels" -}}
{{- $root := index . 0 }}
app.kubernetes.io/name: {{ include "guestbook.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/*
The Redis Service's name (the front end's REDIS_HOST).
*/}}
{{- define "guestbook.redisName" -}}
{{- printf "%s-redis" (include "guestbook.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "guestbook.tlsSecret" -}}
{{- default (printf "%s-tls" (include "guestbook.fullname" .)) .Values.ingress.tls.secretName }}
{{- end }}
