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

{{/* The status writer's Deployment (and its ServiceAccount unless serviceAccount.statusWriterName says otherwise). */}}
{{- define "outpost.statusWriterName" -}}
{{- printf "%s-status-writer" (include "outpost.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The status writer's pods; never matched by the agent's selector (app.kubernetes.io/name differs). */}}
{{- define "outpost.statusWriterSelectorLabels" -}}
app.kubernetes.io/name: outpost-status-writer
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "outpost.statusWriterServiceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "outpost.statusWriterName" .) .Values.serviceAccount.statusWriterName -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.statusWriterName -}}
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

{{/*
Outpost's image: outpostImage.*, overridden field by field by an image map (this chart's earlier name). An image
string is EMCO's monitor image name and is ignored, like EMCO's repository, emcoTag and workingDir.
*/}}
{{- define "outpost.legacyImage" -}}
{{- $image := index .Values "image" -}}
{{- if kindIs "map" $image }}{{ toJson $image }}{{ else }}{}{{ end -}}
{{- end -}}

{{- define "outpost.image" -}}
{{- $legacy := include "outpost.legacyImage" . | fromJson -}}
{{- $repository := default .Values.outpostImage.repository (get $legacy "repository") -}}
{{- $tag := default .Values.outpostImage.tag (get $legacy "tag") -}}
{{ printf "%s:%s" $repository (default .Chart.AppVersion $tag) }}
{{- end -}}

{{- define "outpost.imagePullPolicy" -}}
{{- $legacy := include "outpost.legacyImage" . | fromJson -}}
{{- default .Values.outpostImage.pullPolicy (get $legacy "pullPolicy") -}}
{{- end -}}

{{/* EMCO's github mode; EMCO compares case-insensitively and takes any other git.gittype for git2go. */}}
{{- define "outpost.emcoGithub" -}}
{{- if eq (lower .Values.git.gittype) "github" -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{/*
The repository the agent follows (and, unless statusGit.repo says otherwise, the status writer's control
repository). With git.giturl it is found exactly as EMCO's monitor finds it (src/monitor/pkg/gitops/gitsupport):
git2go mode clones git.giturl as given and uses git.repo only to name its clone directory; github mode talks to
github.com's API for owner git.username and repository git.repo and never reads git.giturl.
*/}}
{{- define "outpost.repoURL" -}}
{{- if .Values.git.giturl -}}
{{- if contains "://" .Values.git.repo -}}
{{- fail (printf "git.repo is a repository name when git.giturl is set (EMCO's meaning), not a URL: %s" .Values.git.repo) -}}
{{- end -}}
{{- if eq (include "outpost.emcoGithub" .) "true" -}}
{{- printf "https://github.com/%s/%s" .Values.git.username (required "git.repo (the repository name) is required with git.gittype=github" .Values.git.repo) -}}
{{- else -}}
{{- .Values.git.giturl -}}
{{- end -}}
{{- else -}}
{{- .Values.git.repo -}}
{{- end -}}
{{- end -}}

{{/* The branch the agent follows: git.gitbranch (EMCO's name) when set, else git.branch. */}}
{{- define "outpost.branch" -}}
{{- $emco := .Values.git.gitbranch -}}
{{- if and $emco (ne .Values.git.branch "main") (ne .Values.git.branch $emco) -}}
{{- fail (printf "git.branch (%s) and git.gitbranch (%s, EMCO's name for it) disagree: set one" .Values.git.branch $emco) -}}
{{- end -}}
{{- default .Values.git.branch $emco -}}
{{- end -}}

{{/*
The status writer's branch, a template the writer fills in ({cluster}, {cid}, {app}, {bundle}). statusGit.branch
wins; else EMCO's layout, where rsync reads status: one branch per cluster in git2go mode, one per cluster and app
in github mode (src/rsync/pkg/gitops/emcogit2go, emcogithub); else the agent's branch.
*/}}
{{- define "outpost.statusBranch" -}}
{{- if .Values.statusGit.branch -}}
{{- .Values.statusGit.branch -}}
{{- else if eq (include "outpost.emcoGithub" .) "true" -}}
{cluster}-{cid}-{app}
{{- else if .Values.git.giturl -}}
{cluster}
{{- else -}}
{{- include "outpost.branch" . -}}
{{- end -}}
{{- end -}}

{{/*
Env for proxies, shared by both containers: EMCO's httpProxy/httpsProxy per scheme, else git.proxy for both. The
in-cluster names are never proxied; git.noProxy and EMCO's noProxyHosts are added to them.
*/}}
{{- define "outpost.proxyEnv" -}}
{{- $https := default .Values.git.proxy .Values.httpsProxy }}
{{- $http := default .Values.git.proxy .Values.httpProxy }}
{{- if or $https $http }}
{{- $noProxy := list "kubernetes.default.svc" ".svc" ".cluster.local" }}
{{- with .Values.git.noProxy }}{{ $noProxy = append $noProxy . }}{{ end }}
{{- with .Values.noProxyHosts }}{{ $noProxy = append $noProxy . }}{{ end }}
{{- if $https }}
- {name: HTTPS_PROXY, value: {{ $https | quote }}}
{{- end }}
{{- if $http }}
- {name: HTTP_PROXY, value: {{ $http | quote }}}
{{- end }}
- {name: NO_PROXY, value: {{ join "," $noProxy | quote }}}
{{- end }}
{{- end -}}

{{/*
Credential env for one container. Arguments: dict "dir" <mount path> "ca" <bool> "caOnly" <bool> "ssh" <bool>
"token" <bool> "what" <values key, for errors>. The token is mounted as a file; only file paths go into env.
*/}}
{{- define "outpost.credentialEnv" -}}
{{- if and .caOnly (not .ca) }}
{{- fail (printf "git.caOnly needs a CA bundle for %s: its caBundle, or ca.crt in its existingSecretKeys" .what) }}
{{- end }}
{{- if .token }}
- {name: OUTPOST_GIT_TOKEN_FILE, value: {{ printf "%s/token" .dir | quote }}}
{{- end }}
{{- if .ca }}
- {name: OUTPOST_GIT_CA_FILE, value: {{ printf "%s/ca.crt" .dir | quote }}}
{{- if .caOnly }}
- {name: OUTPOST_GIT_CA_ONLY, value: "true"}
{{- end }}
{{- end }}
- {name: OUTPOST_GIT_TIMEOUT, value: {{ .timeout | quote }}}
{{- if .ssh }}
- {name: OUTPOST_GIT_SSH_KEY_FILE, value: {{ printf "%s/ssh-privatekey" .dir | quote }}}
- {name: OUTPOST_GIT_KNOWN_HOSTS_FILE, value: {{ printf "%s/known_hosts" .dir | quote }}}
{{- end }}
{{- end -}}

{{/*
Env limiting watches to the namespaces RBAC grants (rbac.mode=namespaced): there a cluster-wide watch is
forbidden, so the agent's drift watches and the status writer's watches run per namespace.
*/}}
{{- define "outpost.watchEnv" -}}
{{- if and .Values.rbac.create (eq .Values.rbac.mode "namespaced") }}
- {name: OUTPOST_WATCH_NAMESPACES, value: {{ join "," .Values.rbac.namespaces | quote }}}
{{- end }}
{{- end -}}
