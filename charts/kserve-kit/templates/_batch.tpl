{{/*
The batch Job and CronJob (templates/batch-job.yaml, templates/batch-cronjob.yaml) share one
Job spec from here, so that a scheduled run is exactly the one-off run. It mirrors
manifests/components/batch; tests/manifests/test_batch.py checks that the two agree.
*/}}

{{/* Name of the batch Job or CronJob (one at a time): "<isvc>-batch", 51 characters at most,
within the 52 a CronJob name may have. */}}
{{- define "kserve-kit.batchName" -}}
{{- printf "%s-batch" (include "kserve-kit.isvcName" .) }}
{{- end }}

{{/* Labels of the batch objects. */}}
{{- define "kserve-kit.batchLabels" -}}
{{ include "kserve-kit.labels" . }}
app.kubernetes.io/component: batch
{{- end }}

{{/* Labels of the batch pods: stable ones only, so that a chart upgrade keeps them. */}}
{{- define "kserve-kit.batchPodLabels" -}}
{{ include "kserve-kit.selectorLabels" . }}
app.kubernetes.io/component: batch
app.kubernetes.io/part-of: kserve-kit
{{- end }}

{{/* The model's PVC and path in it: batch.modelClaim/modelSubPath, else storageUri when it is
pvc://<claim>/<path> (what KServe mounts for the InferenceService). Returns a dict as JSON. */}}
{{- define "kserve-kit.batchModelVolume" -}}
{{- $claim := .Values.batch.modelClaim }}
{{- $subPath := .Values.batch.modelSubPath }}
{{- if and (not $claim) (hasPrefix "pvc://" .Values.storageUri) }}
{{- $parts := splitn "/" 2 (trimPrefix "pvc://" .Values.storageUri) }}
{{- $claim = $parts._0 }}
{{- $subPath = default "" $parts._1 | trimSuffix "/" }}
{{- end }}
{{- dict "claim" $claim "subPath" $subPath | toJson }}
{{- end }}

{{/* Value combinations of batch that the schema cannot express. */}}
{{- define "kserve-kit.batchValidate" -}}
{{- $model := include "kserve-kit.batchModelVolume" . | fromJson }}
{{- if not $model.claim }}
{{- fail (printf "batch.modelClaim: storageUri %s is not pvc://<claim>/<path>, so name the PVC that holds the model (and batch.modelSubPath)" .Values.storageUri) }}
{{- end }}
{{- if and .Values.batch.modelSubPath (not .Values.batch.modelClaim) }}
{{- fail "batch.modelSubPath needs batch.modelClaim (without it both come from storageUri)" }}
{{- end }}
{{- end }}

{{/* The Job spec of both: pass the root context. */}}
{{- define "kserve-kit.batchJobSpec" -}}
{{- $b := .Values.batch }}
{{- $p := .Values.predictor }}
{{- $t := .Values.transformer }}
{{- $model := include "kserve-kit.batchModelVolume" . | fromJson -}}
{{- $shards := int $b.shards -}}
completionMode: Indexed
completions: {{ $shards }}
parallelism: {{ $b.parallelism | default $shards }}
backoffLimit: {{ $b.backoffLimit }}
backoffLimitPerIndex: {{ $b.backoffLimitPerIndex }}
activeDeadlineSeconds: {{ $b.activeDeadlineSeconds }}
podFailurePolicy:
  rules:
    # Exit 2: the batch command refused its arguments or a finished output; a retry cannot help.
    - action: FailJob
      onExitCodes:
        containerName: batch
        operator: In
        values: [2]
    # Evicted or preempted: retry without counting it against backoffLimit.
    - action: Ignore
      onPodConditions:
        - type: DisruptionTarget
          status: "True"
template:
  metadata:
    labels:
      {{- include "kserve-kit.batchPodLabels" . | nindent 6 }}
  spec:
    restartPolicy: Never
    {{- with $b.serviceAccountName }}
    serviceAccountName: {{ . }}
    {{- end }}
    automountServiceAccountToken: false
    securityContext:
      {{- include "kserve-kit.podSecurityContext" . | nindent 6 }}
      fsGroupChangePolicy: OnRootMismatch
    containers:
      - name: batch
        image: {{ include "kserve-kit.image" (list . $p.image) }}
        {{- with $p.image.pullPolicy }}
        imagePullPolicy: {{ . }}
        {{- end }}
        command: ["python", "-m", "offline.batch"]
        args:
          - --model_dir=/mnt/models
          - --input={{ $b.input }}
          - --output={{ $b.output }}
          # The transformer's text settings: online and offline decide alike.
          - --max_length={{ $t.maxLength }}
          - --confidence_threshold={{ $t.confidenceThreshold }}
          - --others_label={{ $t.othersLabel }}
          - --max_batch_size={{ $b.maxBatchSize }}
          - --torch_threads={{ $b.torchThreads }}
          - --chunk_rows={{ $b.chunkRows }}
          - --progress=off
          {{- if gt $shards 1 }}
          - --shard=index/{{ $shards }}
          {{- end }}
          {{- if $b.gpu }}
          - --device=cuda
          - --dtype={{ .Values.gpu.dtype }}
          {{- end }}
          {{- if .Values.policy.enabled }}
          - --policy_file={{ include "kserve-kit.policyFile" . }}
          {{- end }}
          {{- range $b.extraArgs }}
          - {{ . | quote }}
          {{- end }}
        env:
          - name: OMP_WAIT_POLICY
            value: PASSIVE
          - name: HOME
            value: /tmp
          {{- range $b.extraEnv }}
          - name: {{ .name }}
            value: {{ .value | quote }}
          {{- end }}
        {{- $resources := deepCopy $b.resources }}
        {{- if $b.gpu }}
        {{- $gpus := printf "%v" .Values.gpu.count }}
        {{- $_ := set $resources "requests" (default (dict) $resources.requests) }}
        {{- $_ := set $resources "limits" (default (dict) $resources.limits) }}
        {{- $_ := set $resources.requests .Values.gpu.resourceName $gpus }}
        {{- $_ := set $resources.limits .Values.gpu.resourceName $gpus }}
        {{- end }}
        resources:
          {{- toYaml $resources | nindent 10 }}
        securityContext:
          {{- include "kserve-kit.containerSecurityContext" . | nindent 10 }}
        volumeMounts:
          - name: model
            mountPath: /mnt/models
            {{- with $model.subPath }}
            subPath: {{ . }}
            {{- end }}
            readOnly: true
          - name: data
            mountPath: /data
          - name: scratch
            mountPath: /tmp
          {{- if .Values.policy.enabled }}
          {{- include "kserve-kit.policyVolumeMount" . | nindent 10 }}
          {{- end }}
    {{- $tolerations := $b.tolerations }}
    {{- if $b.gpu }}
    {{- $tolerations = append $tolerations (dict "key" .Values.gpu.resourceName "operator" "Exists" "effect" "NoSchedule") }}
    {{- end }}
    {{- with $tolerations }}
    tolerations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    volumes:
      - name: model
        persistentVolumeClaim:
          claimName: {{ $model.claim }}
          readOnly: true
      - name: data
        persistentVolumeClaim:
          claimName: {{ $b.dataClaim }}
      - name: scratch
        emptyDir:
          sizeLimit: {{ $b.scratchSizeLimit }}
      {{- if .Values.policy.enabled }}
      {{- include "kserve-kit.policyVolume" . | nindent 6 }}
      {{- end }}
{{- end }}
