{{/* Chart name, cut to 63 characters (a DNS label). */}}
{{- define "kserve-kit.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: fullnameOverride, else the release name (when it already holds the chart name),
else "<release>-<chart>"; cut to 63 characters.
*/}}
{{- define "kserve-kit.fullname" -}}
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

{{/*
InferenceService name: the full name cut to 45 characters, since KServe names objects
"<isvc>-transformer" and labels pods "app: isvc.<isvc>-transformer" (63 at most).
*/}}
{{- define "kserve-kit.isvcName" -}}
{{- include "kserve-kit.fullname" . | trunc 45 | trimSuffix "-" }}
{{- end }}

{{/* "name-version" for the helm.sh/chart label. */}}
{{- define "kserve-kit.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object of the release carries. */}}
{{- define "kserve-kit.labels" -}}
helm.sh/chart: {{ include "kserve-kit.chart" . }}
{{ include "kserve-kit.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kserve-kit
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Stable labels (never change across upgrades). */}}
{{- define "kserve-kit.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kserve-kit.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels KServe puts on the pods of one component: pass (list $ "predictor"). */}}
{{- define "kserve-kit.componentPodLabels" -}}
{{- $root := index . 0 -}}
serving.kserve.io/inferenceservice: {{ include "kserve-kit.isvcName" $root }}
component: {{ index . 1 }}
{{- end }}

{{/* True (non-empty) in Knative mode. */}}
{{- define "kserve-kit.knative" -}}
{{- if eq .Values.autoscaling.class "knative" }}true{{ end }}
{{- end }}

{{/* The transformer's --predictor_protocol. */}}
{{- define "kserve-kit.predictorProtocol" -}}
{{- if .Values.transformer.predictorProtocol }}
{{- .Values.transformer.predictorProtocol }}
{{- else if include "kserve-kit.knative" . }}
{{- "v2" }}
{{- else }}
{{- "grpc-v2" }}
{{- end }}
{{- end }}

{{/*
The transformer's --predictor_host. Standard mode with predictor.headlessService.enabled:
dns:///<isvc>-predictor-pods:<port>, the headless Service over every predictor pod, straight to
the pod's gRPC (grpc-v2) or HTTP (v2) port. Otherwise KServe's predictor Service
"<isvc>-predictor" on the gRPC port for grpc-v2 (Standard mode keeps further ports as they
are), on port 80 (the first container port, or the Knative route) for v2.
*/}}
{{- define "kserve-kit.predictorHost" -}}
{{- $grpc := eq (include "kserve-kit.predictorProtocol" .) "grpc-v2" }}
{{- if include "kserve-kit.headlessService" . }}
{{- printf "dns:///%s-predictor-pods:%v" (include "kserve-kit.isvcName" .) (ternary .Values.predictor.grpcPort .Values.predictor.httpPort $grpc) }}
{{- else }}
{{- printf "%s-predictor:%v" (include "kserve-kit.isvcName" .) (ternary .Values.predictor.grpcPort 80 $grpc) }}
{{- end }}
{{- end }}

{{/* True (non-empty) when the headless Service over the predictor pods is made (Standard mode). */}}
{{- define "kserve-kit.headlessService" -}}
{{- if and .Values.predictor.headlessService.enabled (not (include "kserve-kit.knative" .)) }}true{{ end }}
{{- end }}

{{/* image reference: pass (list $ .Values.predictor.image). */}}
{{- define "kserve-kit.image" -}}
{{- $root := index . 0 }}
{{- $image := index . 1 }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}

{{/* Pod-level security context shared by both components and the test pod. */}}
{{- define "kserve-kit.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container security context: non-root, no privilege escalation, read-only root. */}}
{{- define "kserve-kit.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Startup, readiness and liveness probes on the V2 endpoints: pass (list $ port). */}}
{{- define "kserve-kit.probes" -}}
{{- $root := index . 0 }}
{{- $port := index . 1 -}}
startupProbe:
  httpGet:
    path: /v2/health/ready
    port: {{ $port }}
  periodSeconds: 5
  failureThreshold: 60
readinessProbe:
  httpGet:
    path: /v2/models/{{ $root.Values.modelName }}/ready
    port: {{ $port }}
  periodSeconds: 2
  timeoutSeconds: 1
  failureThreshold: 2
livenessProbe:
  httpGet:
    path: /v2/health/live
    port: {{ $port }}
  periodSeconds: 10
  timeoutSeconds: 2
  failureThreshold: 3
{{- if not (include "kserve-kit.knative" $root) }}
lifecycle:
  preStop:
    sleep:
      seconds: {{ $root.Values.drain.preStopSleepSeconds }}
{{- end }}
{{- end }}

{{/* Pod-level drain: the whole stop, preStop sleep and server grace period, with a margin. */}}
{{- define "kserve-kit.terminationGracePeriod" -}}
terminationGracePeriodSeconds: {{ add .Values.drain.preStopSleepSeconds .Values.drain.gracePeriodSeconds 10 }}
{{- end }}

{{/* Checks of value combinations that the schema cannot express. */}}
{{- define "kserve-kit.validate" -}}
{{- $knative := include "kserve-kit.knative" . }}
{{- $class := .Values.autoscaling.class }}
{{- range $component := list "predictor" "transformer" }}
{{- $c := index $.Values $component }}
{{- if and (not $knative) (lt (int $c.minReplicas) 1) }}
{{- fail (printf "%s.minReplicas: 0 (scale to zero) needs autoscaling.class=knative; Standard mode would run 1 pod anyway" $component) }}
{{- end }}
{{- if and (eq $class "hpa") (not (has $c.scaleMetric (list "cpu" "memory"))) }}
{{- fail (printf "%s.scaleMetric=%s: the hpa class scales on cpu or memory only (concurrency and rps need knative)" $component $c.scaleMetric) }}
{{- end }}
{{- if and $knative (not (has $c.scaleMetric (list "concurrency" "rps" "cpu" "memory"))) }}
{{- fail (printf "%s.scaleMetric=%s is not a Knative metric" $component $c.scaleMetric) }}
{{- end }}
{{- if lt (int $c.maxReplicas) (int $c.minReplicas) }}
{{- fail (printf "%s.maxReplicas must be >= minReplicas" $component) }}
{{- end }}
{{- end }}
{{- if and (eq $class "keda") (not (has .Values.transformer.scaleMetric (list "cpu" "memory"))) }}
{{- fail "transformer.scaleMetric: with autoscaling.class=keda the transformer scales on a cpu or memory Resource metric" }}
{{- end }}
{{- if and $knative (eq (include "kserve-kit.predictorProtocol" .) "grpc-v2") }}
{{- fail "transformer.predictorProtocol=grpc-v2 needs Standard mode: Knative serves one port per container, the HTTP one" }}
{{- end }}
{{- if and .Values.canary.enabled (not $knative) }}
{{- fail "canary.enabled needs autoscaling.class=knative: Standard mode has no traffic split" }}
{{- end }}
{{- if and .Values.canary.enabled (not .Values.canary.storageUri) }}
{{- fail "canary.enabled needs canary.storageUri (the second model version)" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled $knative }}
{{- fail "serviceMonitor.enabled needs Standard mode (autoscaling.class hpa or keda)" }}
{{- end }}
{{- if and .Values.gpu.enabled (or .Values.predictor.device .Values.predictor.dtype) }}
{{- fail "gpu.enabled sets --device=cuda and --dtype=gpu.dtype: leave predictor.device and predictor.dtype empty" }}
{{- end }}
{{- $quantize := .Values.predictor.quantize }}
{{- if and $quantize (ne $quantize "none") (or .Values.gpu.enabled (eq .Values.predictor.device "cuda")) }}
{{- fail (printf "predictor.quantize=%s runs on the CPU only: on a GPU leave it empty (gpu.dtype halves the weights)" $quantize) }}
{{- end }}
{{- if and $quantize (ne $quantize "none") (has .Values.predictor.dtype (list "float16" "bfloat16")) }}
{{- fail (printf "predictor.quantize=%s quantizes float32 weights: leave predictor.dtype empty, auto or float32" $quantize) }}
{{- end }}
{{- include "kserve-kit.policyValidate" . }}
{{- end }}
