{{/*
Names and labels, as in the `helm create` skeleton.
*/}}
{{- define "treezor-token-broker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, truncated to 63 characters (DNS-1123 label).
If the release name contains the chart name it is used as is.
*/}}
{{- define "treezor-token-broker.fullname" -}}
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

{{- define "treezor-token-broker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "treezor-token-broker.labels" -}}
helm.sh/chart: {{ include "treezor-token-broker.chart" . }}
{{ include "treezor-token-broker.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "treezor-token-broker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "treezor-token-broker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of the `helm test` pod. Deliberately not the selector labels, so the
Service, the PodDisruptionBudget and the spread constraints never count it
as a broker; the NetworkPolicy admits it to the health port by these.
*/}}
{{- define "treezor-token-broker.testSelectorLabels" -}}
app.kubernetes.io/name: {{ include "treezor-token-broker.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "treezor-token-broker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "treezor-token-broker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
"repository@digest" when a digest is set, else "repository:tag".
Usage: include "treezor-token-broker.imageRef" (dict "image" .Values.image "defaultTag" .Chart.AppVersion)
*/}}
{{- define "treezor-token-broker.imageRef" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .defaultTag .image.tag) }}
{{- end }}
{{- end }}

{{/* Secret holding the server certificate (kubernetes.io/tls). */}}
{{- define "treezor-token-broker.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "treezor-token-broker.fullname" .)) .Values.tls.secretName }}
{{- end }}

{{/*
Where files are mounted in the container. One directory per Secret or
ConfigMap volume, mounted whole (never subPath), so the kubelet's atomic
updates of rotated certificates and secrets reach the running broker.
*/}}
{{- define "treezor-token-broker.mountRoot" -}}/etc/treezor-token-broker{{- end }}
{{- define "treezor-token-broker.configPath" -}}{{ include "treezor-token-broker.mountRoot" . }}/config/broker.json{{- end }}

{{/*
Seconds in a protobuf JSON duration ("10s", "0.5s"). The schema guarantees the
form.
*/}}
{{- define "treezor-token-broker.durationSeconds" -}}
{{- trimSuffix "s" . | float64 }}
{{- end }}

{{/*
The files the broker reads from the server TLS volumes, as JSON:
  tls       {dir, keys}             the kubernetes.io/tls Secret
  clientCa  {dir, keys} or absent   a separate client CA Secret/ConfigMap
  broker    the serverTls fields of the broker's config
The config (configJson) and the volumes (deployment.yaml) both come from
here, so a path in the config always has a mount behind it.
*/}}
{{- define "treezor-token-broker.serverTlsFiles" -}}
{{- $root := include "treezor-token-broker.mountRoot" . }}
{{- $ca := .Values.tls.clientCa }}
{{- $tls := dict "dir" (printf "%s/tls" $root) "keys" (list "tls.crt" "tls.key") }}
{{- $out := dict "tls" $tls }}
{{- $caFile := "" }}
{{- if or $ca.secretName $ca.configMapName }}
{{- $_ := set $out "clientCa" (dict "dir" (printf "%s/client-ca" $root) "keys" (list $ca.key)) }}
{{- $caFile = printf "%s/client-ca/%s" $root $ca.key }}
{{- else }}
{{- $_ := set $tls "keys" (append $tls.keys $ca.key) }}
{{- $caFile = printf "%s/%s" $tls.dir $ca.key }}
{{- end }}
{{- $_ := set $out "broker" (dict "certFile" (printf "%s/tls.crt" $tls.dir) "keyFile" (printf "%s/tls.key" $tls.dir) "clientCaFile" $caFile) }}
{{- toJson $out }}
{{- end }}

{{/*
The files one tenant's credentials are read from, as JSON:
  credentials  {dir, keys}            the tenant's credentials Secret
  mtls         {dir, keys}            its kubernetes.io/tls Secret
  upstreamCa   {dir, keys} or absent  its Treezor CA ConfigMap
  broker       the tenant's file fields in the broker's config
Usage: include "treezor-token-broker.tenantFiles" (dict "root" $ "tenant" $t)
*/}}
{{- define "treezor-token-broker.tenantFiles" -}}
{{- $t := .tenant }}
{{- $dir := printf "%s/tenants/%s" (include "treezor-token-broker.mountRoot" .root) $t.name }}
{{- $secretKey := $t.secrets.clientSecretKey | default "client-secret" }}
{{- $creds := dict "dir" (printf "%s/credentials" $dir) "keys" (list $secretKey) }}
{{- $broker := dict "clientSecretFile" (printf "%s/%s" $creds.dir $secretKey) }}
{{- if eq ($t.grantType | default "client_credentials") "password" }}
{{- $userKey := $t.secrets.usernameKey | default "username" }}
{{- $passKey := $t.secrets.passwordKey | default "password" }}
{{- $_ := set $creds "keys" (list $secretKey $userKey $passKey | uniq) }}
{{- $_ := set $broker "usernameFile" (printf "%s/%s" $creds.dir $userKey) }}
{{- $_ := set $broker "passwordFile" (printf "%s/%s" $creds.dir $passKey) }}
{{- end }}
{{- $mtls := dict "dir" (printf "%s/mtls" $dir) "keys" (list "tls.crt" "tls.key") }}
{{- $upstreamTls := dict "certFile" (printf "%s/tls.crt" $mtls.dir) "keyFile" (printf "%s/tls.key" $mtls.dir) }}
{{- $out := dict "credentials" $creds "mtls" $mtls }}
{{- if and $t.upstreamCa $t.upstreamCa.configMap }}
{{- $caKey := $t.upstreamCa.key | default "ca.crt" }}
{{- $_ := set $out "upstreamCa" (dict "dir" (printf "%s/upstream-ca" $dir) "keys" (list $caKey)) }}
{{- $_ := set $upstreamTls "caFile" (printf "%s/upstream-ca/%s" $dir $caKey) }}
{{- end }}
{{- $_ := set $broker "upstreamTls" $upstreamTls }}
{{- $_ := set $out "broker" $broker }}
{{- toJson $out }}
{{- end }}

{{/*
The broker's configuration as JSON: .Values.config with the parts the chart
owns filled in (listen addresses, mounted file paths) and the chart-only
tenant fields (secrets, upstreamCa) and the unset limits ("") taken out. The ConfigMap holds exactly
this and the Deployment's checksum/config annotation hashes it.
*/}}
{{- define "treezor-token-broker.configJson" -}}
{{- $v := .Values }}
{{- $config := omit (deepCopy $v.config) "tenants" "serverTls" "limits" }}
{{- /* limits: only the values set; "" (or null) keeps the broker's default */}}
{{- $limits := dict }}
{{- range $name, $value := ($v.config.limits | default dict) }}
{{- if and (not (kindIs "invalid" $value)) (ne (toString $value) "") }}
{{- $_ := set $limits $name $value }}
{{- end }}
{{- end }}
{{- if $limits }}
{{- $_ := set $config "limits" $limits }}
{{- end }}
{{- $_ := set $config "listenAddress" (printf "%s:%d" $v.listenHost (int $v.ports.grpc)) }}
{{- $_ := set $config "healthListenAddress" (printf "%s:%d" $v.listenHost (int $v.ports.health)) }}
{{- if $v.metrics.enabled }}
{{- $_ := set $config "metricsListenAddress" (printf "%s:%d" $v.listenHost (int $v.ports.metrics)) }}
{{- end }}
{{- $serverTls := merge (deepCopy ($v.config.serverTls | default dict)) (include "treezor-token-broker.serverTlsFiles" . | fromJson).broker }}
{{- $_ := set $config "serverTls" $serverTls }}
{{- $tenants := list }}
{{- range $v.config.tenants }}
{{- $files := include "treezor-token-broker.tenantFiles" (dict "root" $ "tenant" .) | fromJson }}
{{- $tenants = append $tenants (merge (omit (deepCopy .) "secrets" "upstreamCa") $files.broker) }}
{{- end }}
{{- $_ := set $config "tenants" $tenants }}
{{- toPrettyJson $config }}
{{- end }}

{{/*
Checks across values that a JSON schema cannot express; each failure names
the values involved.
*/}}
{{- define "treezor-token-broker.validate" -}}
{{- $v := .Values }}
{{- $names := dict }}
{{- range $i, $t := $v.config.tenants }}
{{- if or (eq $t.name ".") (eq $t.name "..") }}
{{- fail (printf "config.tenants[%d].name: %q is not a usable tenant name (it names a mount directory)" $i $t.name) }}
{{- end }}
{{- if hasKey $names $t.name }}
{{- fail (printf "config.tenants[%d].name: duplicate tenant name %q" $i $t.name) }}
{{- end }}
{{- $_ := set $names $t.name true }}
{{- end }}
{{- if and $v.tls.clientCa.secretName $v.tls.clientCa.configMapName }}
{{- fail "tls.clientCa: set secretName or configMapName, not both" }}
{{- end }}
{{- if and $v.tls.certManager.enabled (not $v.tls.certManager.issuerRef.name) }}
{{- fail "tls.certManager.issuerRef.name is required when tls.certManager.enabled is true" }}
{{- end }}
{{- if and $v.tests.enabled (not (or $v.tests.image.tag $v.tests.image.digest)) }}
{{- fail "tests.image: set tag or digest (or tests.enabled: false)" }}
{{- end }}
{{- if and $v.metrics.serviceMonitor.enabled (not $v.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled requires metrics.enabled" }}
{{- end }}
{{- $pdb := $v.podDisruptionBudget }}
{{- if and $pdb.enabled (not (kindIs "invalid" $pdb.minAvailable)) (not (kindIs "invalid" $pdb.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both (null the other)" }}
{{- end }}
{{- if and $pdb.enabled (kindIs "invalid" $pdb.minAvailable) (kindIs "invalid" $pdb.maxUnavailable) }}
{{- fail "podDisruptionBudget: set one of minAvailable and maxUnavailable" }}
{{- end }}
{{- $drain := addf (float64 $v.preStopDelaySeconds) (include "treezor-token-broker.durationSeconds" ($v.config.shutdownGracePeriod | default "10s") | float64) }}
{{- if le (float64 $v.terminationGracePeriodSeconds) $drain }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed preStopDelaySeconds + config.shutdownGracePeriod (%v s), or the broker is killed before it drains" $v.terminationGracePeriodSeconds $drain) }}
{{- end }}
{{- end }}
