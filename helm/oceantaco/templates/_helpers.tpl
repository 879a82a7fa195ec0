{{/*
Labels of every object: the standard Helm ones plus app.kubernetes.io/part-of, which the NetworkPolicies
select on.
*/}}
{{- define "oceantaco.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "oceantaco.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: oceantaco
{{- end }}

{{- define "oceantaco.selectorLabels" -}}
app.kubernetes.io/name: oceantaco
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The pipeline image, repository:tag (tag: worker.image.tag or the chart's appVersion). */}}
{{- define "oceantaco.image" -}}
{{- printf "%s:%s" .Values.worker.image.repository (.Values.worker.image.tag | default .Chart.AppVersion) -}}
{{- end }}

{{/* PREFECT_API_URL of the worker (and, through it, of the flow runs). */}}
{{- define "oceantaco.apiUrl" -}}
{{- if eq .Values.worker.apiConfig "cloud" -}}
{{- $cloud := .Values.worker.cloudApiConfig -}}
{{- printf "%s/accounts/%s/workspaces/%s" $cloud.cloudUrl
      (required "worker.cloudApiConfig.accountId is required with worker.apiConfig=cloud" $cloud.accountId)
      (required "worker.cloudApiConfig.workspaceId is required with worker.apiConfig=cloud" $cloud.workspaceId) -}}
{{- else -}}
{{- required "worker.serverApiConfig.apiUrl is required with worker.apiConfig=server" .Values.worker.serverApiConfig.apiUrl -}}
{{- end -}}
{{- end }}

{{/* The Secret the flow runs get their provider logins from (envFrom). */}}
{{- define "oceantaco.credentialsSecretName" -}}
{{- if and .Values.credentials.create .Values.credentials.existingSecret -}}
{{- fail "set either credentials.existingSecret or credentials.create, not both" -}}
{{- end -}}
{{- .Values.credentials.existingSecret | default "oceantaco-credentials" -}}
{{- end }}

{{/* The ConfigMap holding the base job template. */}}
{{- define "oceantaco.baseJobTemplateConfigMap" -}}
{{- .Values.worker.config.baseJobTemplate.existingConfigMapName | default "oceantaco-base-job-template" -}}
{{- end }}

{{/*
files/base-job-template.json (a link to k8s/base-job-template.json, the one template of both install paths)
with the defaults of this release: namespace, flow-run service account, image and pull policy, the
credentials Secret, and flowRun.nodeSelector / flowRun.tolerations when set.
*/}}
{{- define "oceantaco.baseJobTemplate" -}}
{{- $template := .Files.Get "files/base-job-template.json" | fromJson -}}
{{- if not (dig "variables" "properties" "image" "" $template) -}}
{{- fail "files/base-job-template.json is missing or has no variables.properties.image" -}}
{{- end -}}
{{- $props := $template.variables.properties -}}
{{- $_ := set $props.namespace "default" .Release.Namespace -}}
{{- $_ = set $props.service_account_name "default" .Values.serviceAccounts.flowRun.name -}}
{{- $_ = set $props.image "default" (include "oceantaco.image" .) -}}
{{- $_ = set $props.image_pull_policy "default" .Values.worker.image.pullPolicy -}}
{{- $secretRef := dict "secretRef" (dict "name" (include "oceantaco.credentialsSecretName" .)) -}}
{{- $_ = set $props.env_from "default" (list $secretRef) -}}
{{- with .Values.flowRun.nodeSelector -}}
{{- $_ = set $props.node_selector "default" . -}}
{{- end -}}
{{- with .Values.flowRun.tolerations -}}
{{- $_ = set $props.tolerations "default" . -}}
{{- end -}}
{{- toPrettyJson $template -}}
{{- end }}

{{/*
Environment of the worker's containers. PREFECT_* settings set here also reach the flow-run Jobs (the
worker copies its own PREFECT_* environment into them), except the API key, which the Jobs reference in
its Secret (PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_*).
*/}}
{{- define "oceantaco.workerEnv" -}}
- name: HOME
  value: /scratch
- name: TMPDIR
  value: /scratch
- name: PREFECT_API_URL
  value: {{ include "oceantaco.apiUrl" . | quote }}
{{- if eq .Values.worker.apiConfig "cloud" }}
- name: PREFECT_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.worker.cloudApiConfig.apiKeySecret.name }}
      key: {{ .Values.worker.cloudApiConfig.apiKeySecret.key }}
- name: PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_NAME
  value: {{ .Values.worker.cloudApiConfig.apiKeySecret.name | quote }}
- name: PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_KEY
  value: {{ .Values.worker.cloudApiConfig.apiKeySecret.key | quote }}
{{- end }}
# watch only this namespace's Jobs and pods: the Role is namespaced
- name: PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: PREFECT_WORKER_QUERY_SECONDS
  value: {{ .Values.worker.config.queryInterval | quote }}
- name: PREFECT_WORKER_WEBSERVER_PORT
  value: "8080"
{{- with .Values.worker.extraEnvVars }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Egress of both roles: cluster DNS and the Prefect API (HTTPS to public addresses; the in-cluster
server with worker.apiConfig=server and networkPolicy.prefectApi.inCluster). */}}
{{- define "oceantaco.commonEgress" -}}
# cluster DNS (kube-dns / CoreDNS)
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: kube-system
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
# Prefect API (Prefect Cloud, or a server on a public address), object storage and providers: HTTPS
- to:
    {{- include "oceantaco.publicInternet" . | nindent 4 }}
  ports:
    - {protocol: TCP, port: 443}
{{- with .Values.networkPolicy.prefectApi }}
{{- if and (eq $.Values.worker.apiConfig "server") .inCluster }}
{{- if not (or .namespaceSelector .podSelector) }}
{{- fail "networkPolicy.prefectApi.inCluster needs a namespaceSelector or podSelector (an empty peer allows any destination)" }}
{{- end }}
{{- $peer := dict }}
{{- with .namespaceSelector }}{{ $_ := set $peer "namespaceSelector" . }}{{ end }}
{{- with .podSelector }}{{ $_ := set $peer "podSelector" . }}{{ end }}
# Prefect API: the self-hosted server in this cluster
- to:
    {{- list $peer | toYaml | nindent 4 }}
  ports:
    - {protocol: TCP, port: {{ .port }}}
{{- end }}
{{- end }}
{{- end }}

{{/* 0.0.0.0/0 minus the private and link-local ranges: the public internet. */}}
{{- define "oceantaco.publicInternet" -}}
- ipBlock:
    cidr: 0.0.0.0/0
    except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16]
{{- end }}
