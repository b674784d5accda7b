{{/*
The decision policy (values policy.*): a ConfigMap "<isvc>-policy" holding policy.json, mounted
as a directory (never with subPath, which would freeze the file) into the transformer and the
batch pods. It mirrors manifests/components/policy; tests/manifests/test_policy.py checks both.
*/}}

{{/* The policy ConfigMap's name. */}}
{{- define "kserve-kit.policyName" -}}
{{- printf "%s-policy" (include "kserve-kit.isvcName" .) }}
{{- end }}

{{/* Where the ConfigMap is mounted, and the file the servers read. */}}
{{- define "kserve-kit.policyMountPath" -}}
/mnt/policy
{{- end }}

{{- define "kserve-kit.policyFile" -}}
{{- printf "%s/policy.json" (include "kserve-kit.policyMountPath" .) }}
{{- end }}

{{/* The keys a policy may have (values.schema.json, definitions.policy, checks the inline one). */}}
{{- define "kserve-kit.policyKeys" -}}
{{- list "format" "version" "model_version" "others_label" "temperature" "threshold" "class_thresholds" "provenance" | toJson }}
{{- end }}

{{/* Value combinations of policy that the schema cannot express, and policy.file's text. */}}
{{- define "kserve-kit.policyValidate" -}}
{{- $p := .Values.policy }}
{{- if not $p.enabled }}
{{- if or $p.inline $p.file }}
{{- fail "policy.inline or policy.file is set but policy.enabled is false: add --set policy.enabled=true, or leave both empty" }}
{{- end }}
{{- else }}
{{- if and $p.inline $p.file }}
{{- fail "policy: set one of policy.inline and policy.file, not both" }}
{{- end }}
{{- if not (or $p.inline $p.file) }}
{{- fail "policy.enabled needs a policy: policy.inline (an object) or --set-file policy.file=path/to/policy.json" }}
{{- end }}
{{- if $p.file }}
{{- $parsed := fromJson $p.file }}
{{- if hasKey $parsed "Error" }}
{{- fail (printf "policy.file is not a JSON object (%s): pass a policy.json with --set-file policy.file=path/to/policy.json" $parsed.Error) }}
{{- end }}
{{- $known := include "kserve-kit.policyKeys" . | fromJsonArray }}
{{- range $key, $_ := $parsed }}
{{- if not (has $key $known) }}
{{- fail (printf "policy.file: unknown key %q (a policy has %s)" $key (join ", " $known)) }}
{{- end }}
{{- end }}
{{- if not (and (hasKey $parsed "format") (hasKey $parsed "version")) }}
{{- fail "policy.file: a policy needs \"format\" and \"version\"" }}
{{- end }}
{{- if ne (toString $parsed.format) "1" }}
{{- fail (printf "policy.file: format %v is not supported (1 is)" $parsed.format) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* policy.json's text: policy.file as given, else policy.inline as JSON. */}}
{{- define "kserve-kit.policyJson" -}}
{{- if .Values.policy.file }}
{{- .Values.policy.file | trim }}
{{- else }}
{{- .Values.policy.inline | toPrettyJson }}
{{- end }}
{{- end }}

{{/* The container's mount of the policy: the whole ConfigMap as a read-only directory. */}}
{{- define "kserve-kit.policyVolumeMount" -}}
- name: policy
  mountPath: {{ include "kserve-kit.policyMountPath" . }}
  readOnly: true
{{- end }}

{{/* The pod's volume of the policy ConfigMap. */}}
{{- define "kserve-kit.policyVolume" -}}
- name: policy
  configMap:
    name: {{ include "kserve-kit.policyName" . }}
{{- end }}
