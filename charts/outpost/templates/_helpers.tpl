{{- define "outpost.fullname" -}}
{{- if contains "outpost" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-outpost" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "outpost.selectorLabels" -}}
app.kubernetes.io/name: outpost
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "outpost.labels" -}}
{{ include "outpost.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "outpost.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "outpost.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Leader election is needed whenever more than one pod may run. */}}
{{- define "outpost.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (eq .Values.kind "DaemonSet") (gt (int .Values.replicas) 1) -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{/* The Secret holding the agent's Git credentials. */}}
{{- define "outpost.gitSecret" -}}
{{- default (printf "%s-git" (include "outpost.fullname" .)) .Values.git.existingSecret -}}
{{- end -}}

{{/* Whether the status writer uses its own credentials. */}}
{{- define "outpost.statusOwnCredentials" -}}
{{- if or .Values.statusGit.token .Values.statusGit.existingSecret .Values.statusGit.ssh.privateKey .Values.statusGit.caBundle -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{- define "outpost.statusSecret" -}}
{{- if eq (include "outpost.statusOwnCredentials" .) "true" -}}
{{- default (printf "%s-status-git" (include "outpost.fullname" .)) .Values.statusGit.existingSecret -}}
{{- else -}}
{{- include "outpost.gitSecret" . -}}
{{- end -}}
{{- end -}}

{{- define "outpost.image" -}}
{{ printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end -}}

{{/* Env for proxies, shared by both containers. */}}
{{- define "outpost.proxyEnv" -}}
{{- if .Values.git.proxy }}
- {name: HTTPS_PROXY, value: {{ .Values.git.proxy | quote }}}
- {name: HTTP_PROXY, value: {{ .Values.git.proxy | quote }}}
- {name: NO_PROXY, value: {{ printf "kubernetes.default.svc,.svc,.cluster.local%s" (ternary (printf ",%s" .Values.git.noProxy) "" (ne .Values.git.noProxy "")) | quote }}}
{{- end }}
{{- end -}}

{{/*
Credential env for one container. Arguments: dict "secret" <name> "ca" <bool> "ssh" <bool> "token" <bool>.
The token is mounted as a file; only file paths go into env.
*/}}
{{- define "outpost.credentialEnv" -}}
{{- if .token }}
- {name: OUTPOST_GIT_TOKEN_FILE, value: {{ printf "%s/token" .dir | quote }}}
{{- end }}
{{- if .ca }}
- {name: OUTPOST_GIT_CA_FILE, value: {{ printf "%s/ca.crt" .dir | quote }}}
{{- end }}
{{- if .ssh }}
- {name: OUTPOST_GIT_SSH_KEY_FILE, value: {{ printf "%s/ssh-privatekey" .dir | quote }}}
- {name: OUTPOST_GIT_KNOWN_HOSTS_FILE, value: {{ printf "%s/known_hosts" .dir | quote }}}
{{- end }}
{{- end -}}
