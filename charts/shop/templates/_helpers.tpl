{{/*
Objects are named for their service (users, products, ...), as the services call each other and
as compose names them: one release of the shop per namespace.
*/}}

{{- define "shop.labels" -}}
app.kubernetes.io/part-of: shop
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{ include "shop.selectorLabels" . }}
{{- end -}}

{{- define "shop.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/component: {{ .component | default "service" }}
{{- end -}}

{{/*
`over` laid over `base`: maps merge key by key, anything else (lists, false, 0, "") replaces.
(sprig's merge functions drop false, 0 and "" from the winning side.) Returns JSON.
*/}}
{{- define "shop.overlay" -}}
{{- $out := deepCopy .base -}}
{{- range $key, $value := .over -}}
{{- $current := get $out $key -}}
{{- if and (kindIs "map" $value) (kindIs "map" $current) -}}
{{- $_ := set $out $key (include "shop.overlay" (dict "base" $current "over" $value) | fromJson) -}}
{{- else -}}
{{- $_ := set $out $key $value -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The services, each its entry over `default`, as a JSON map of name to settings. */}}
{{- define "shop.services" -}}
{{- $services := dict -}}
{{- range $name, $own := .Values.services -}}
{{- $_ := set $services $name (include "shop.overlay" (dict "base" $.Values.default "over" $own) | fromJson) -}}
{{- end -}}
{{- range $name, $service := $services -}}
{{- range $callee := $service.calls -}}
{{- if not (hasKey $services $callee) -}}
{{- fail (printf "services.%s.calls names %s, which is no service" $name $callee) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $services -}}
{{- end -}}

{{- define "shop.image" -}}
{{- if .service.image -}}
{{- .service.image -}}
{{- else -}}
{{- printf "%s-%s:%s" .root.Values.image.repository .name (.root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "shop.secretName" -}}
{{- .Values.secrets.existingSecret | default "shop" -}}
{{- end -}}

{{/* Keys of the Secret a deployment may go without: no first admin, a mail server without a
login, no SMS. */}}
{{- define "shop.optionalSecretKeys" -}}
{{- list "ADMIN_PASSWORD" "SMTP_PASSWORD" "TWILIO_AUTH_TOKEN" | toJson -}}
{{- end -}}

{{/* A service's variables from the Secret (variable -> key): the datastores', then its own. */}}
{{- define "shop.secretEnv" -}}
{{- $secret := dict "MONGO_URL" "MONGO_URL" "NATS_URL" "NATS_URL" -}}
{{- range $variable, $key := .service.secretEnv -}}
{{- $_ := set $secret $variable $key -}}
{{- end -}}
{{- toJson $secret -}}
{{- end -}}

{{/* A service's plain settings (name -> value): the shared ones, its own `env` over them. */}}
{{- define "shop.plainEnv" -}}
{{- $secret := include "shop.secretEnv" . | fromJson -}}
{{- $plain := dict
  "PORT" "8000"
  "HOST" "0.0.0.0"
  "ENVIRONMENT" .root.Values.environment
  "LOG_LEVEL" .root.Values.logLevel
  "LOG_REQUESTS" (toString .root.Values.logRequests)
  "JWT_ISSUER" .root.Values.jwt.issuer
  "JWT_AUDIENCE" .root.Values.jwt.audience
  "JWKS_URL" "http://users:8000/api/v1/auth/jwks"
  "SHUTDOWN_TIMEOUT" (toString (int .service.drainSeconds))
-}}
{{- range $variable, $value := .service.env -}}
{{- if hasKey $secret $variable -}}
{{- fail (printf "%s is both in env and in secretEnv of a service: name it once" $variable) -}}
{{- end -}}
{{- $_ := set $plain $variable (toString $value) -}}
{{- end -}}
{{- toJson $plain -}}
{{- end -}}

{{/* The Secret's variables, as container `env` entries. */}}
{{- define "shop.secretEnvEntries" -}}
{{- $optional := include "shop.optionalSecretKeys" . | fromJsonArray -}}
{{- $name := .secretName | default (include "shop.secretName" .root) -}}
{{- $secret := include "shop.secretEnv" . | fromJson -}}
{{- range $variable := keys $secret | sortAlpha }}
{{- $key := get $secret $variable }}
- name: {{ $variable }}
  valueFrom:
    secretKeyRef:
      name: {{ $name }}
      key: {{ $key }}
      {{- if has $key $optional }}
      optional: true
      {{- end }}
{{- end }}
{{- end -}}

{{/*
A service container's environment: its ConfigMap (the plain settings), then the Secret's
variables, then the plain values that refer to those as $(NAME), which Kubernetes expands only
in `env` and only from variables above them.
*/}}
{{- define "shop.serviceEnv" -}}
envFrom:
  - configMapRef:
      name: {{ .name }}
env:
  {{- include "shop.secretEnvEntries" . | nindent 2 }}
  {{- $plain := include "shop.plainEnv" . | fromJson }}
  {{- range $variable := keys $plain | sortAlpha }}
  {{- $value := get $plain $variable }}
  {{- if contains "$(" $value }}
  - name: {{ $variable }}
    value: {{ $value | quote }}
  {{- end }}
  {{- end }}
{{- end -}}

{{/* The same environment inline, for the prepare Jobs (which run before the ConfigMaps change). */}}
{{- define "shop.env" -}}
{{- include "shop.secretEnvEntries" . }}
{{- $plain := include "shop.plainEnv" . | fromJson }}
{{- range $variable := keys $plain | sortAlpha }}
- name: {{ $variable }}
  value: {{ get $plain $variable | quote }}
{{- end }}
{{- end -}}

{{/* Pod and container hardening, the same for the services, the gateway and the prepare Job. */}}
{{- define "shop.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "shop.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
