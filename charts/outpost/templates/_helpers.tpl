{{- define "outpost.fullname" -}}
{{- printf "%s-outpost" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "outpost.labels" -}}
app.kubernetes.io/name: outpost
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
