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

{{/* The container's environment: the shared settings, the Secret's, then the service's own. */}}
{{- define "shop.env" -}}
- name: PORT
  value: "8000"
- name: HOST
  value: 0.0.0.0
- name: ENVIRONMENT
  value: {{ .root.Values.environment | quote }}
- name: LOG_LEVEL
  value: {{ .root.Values.logLevel | quote }}
- name: LOG_REQUESTS
  value: {{ .root.Values.logRequests | toString | quote }}
- name: JWT_ISSUER
  value: {{ .root.Values.jwt.issuer | quote }}
- name: JWT_AUDIENCE
  value: {{ .root.Values.jwt.audience | quote }}
- name: JWKS_URL
  value: http://users:8000/api/v1/auth/jwks
- name: SHUTDOWN_TIMEOUT
  value: {{ .service.drainSeconds | quote }}
{{- range $variable, $key := merge (dict "MONGO_URL" "MONGO_URL" "NATS_URL" "NATS_URL") .service.secretEnv }}
- name: {{ $variable }}
  valueFrom:
    secretKeyRef:
      name: {{ include "shop.secretName" $.root }}
      key: {{ $key }}
{{- end }}
{{- range $variable, $value := .service.env }}
- name: {{ $variable }}
  value: {{ $value | toString | quote }}
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
