{{/* Names, labels and images shared by the templates. */}}

{{/* The release's base name: the release name, unless it already contains the chart's. */}}
{{- define "ferrolb.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ferrolb.controller.name" -}}{{ include "ferrolb.fullname" . }}-controller{{- end -}}
{{- define "ferrolb.speaker.name" -}}{{ include "ferrolb.fullname" . }}-speaker{{- end -}}

{{/* The membership key Secret the speakers read: the user's, or the chart's. */}}
{{- define "ferrolb.membership.secret" -}}
{{- default (printf "%s-membership" (include "ferrolb.fullname" .)) .Values.membership.existingSecret -}}
{{- end -}}

{{- define "ferrolb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: ferrolb.selector (dict "ctx" $ "component" "x"). */}}
{{- define "ferrolb.selector" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ferrolb.componentLabels" -}}
{{ include "ferrolb.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "ferrolb.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* host:port for a listen address; IPv6 addresses get brackets. */}}
{{- define "ferrolb.listen" -}}
{{- if contains ":" .bindAddress -}}
[{{ .bindAddress }}]:{{ .port }}
{{- else -}}
{{ .bindAddress }}:{{ .port }}
{{- end -}}
{{- end -}}
