#!/usr/bin/env bash
# Run the predictor and the transformer as two local processes, the way the InferenceService
# runs them as two pods. Ctrl-C (or SIGTERM) stops both. Called by `make serve`.
set -euo pipefail

PY=${PY:-.venv/bin/python}
MODEL_DIR=${MODEL_DIR:-models/demo}
HOP=${HOP:-grpc-v2}
TRANSFORMER_HTTP_PORT=${TRANSFORMER_HTTP_PORT:-8080}
TRANSFORMER_GRPC_PORT=${TRANSFORMER_GRPC_PORT:-8081}
PREDICTOR_HTTP_PORT=${PREDICTOR_HTTP_PORT:-8090}
PREDICTOR_GRPC_PORT=${PREDICTOR_GRPC_PORT:-8091}
MODEL_NAME=${MODEL_NAME:-text-classifier}
READY_TIMEOUT_S=${READY_TIMEOUT_S:-180}

case "$HOP" in
  grpc-v2) predictor_host="localhost:$PREDICTOR_GRPC_PORT" ;;
  v2) predictor_host="localhost:$PREDICTOR_HTTP_PORT" ;;
  *) echo "HOP must be grpc-v2 or v2, got '$HOP'" >&2; exit 2 ;;
esac

pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

wait_ready() { # name port pid
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  until curl -fsS "http://localhost:$2/v2/health/ready" >/dev/null 2>&1; do
    if ! kill -0 "$3" 2>/dev/null; then echo "$1 exited before it was ready" >&2; exit 1; fi
    if ((SECONDS > deadline)); then echo "$1 not ready after ${READY_TIMEOUT_S}s" >&2; exit 1; fi
    sleep 0.5
  done
  echo "$1 ready on http://localhost:$2"
}

OMP_WAIT_POLICY=PASSIVE "$PY" -m predictor --model_dir "$MODEL_DIR" --model_name "$MODEL_NAME" \
  --http_port "$PREDICTOR_HTTP_PORT" --grpc_port "$PREDICTOR_GRPC_PORT" &
pids+=($!)
wait_ready predictor "$PREDICTOR_HTTP_PORT" "${pids[0]}"

"$PY" -m transformer --model_dir "$MODEL_DIR" --model_name "$MODEL_NAME" \
  --http_port "$TRANSFORMER_HTTP_PORT" --grpc_port "$TRANSFORMER_GRPC_PORT" \
  --predictor_host "$predictor_host" --predictor_protocol "$HOP" &
pids+=($!)
wait_ready transformer "$TRANSFORMER_HTTP_PORT" "${pids[1]}"

cat <<MSG

Serving '$MODEL_NAME' from $MODEL_DIR (transformer -> predictor over $HOP). Try:

  curl -s localhost:$TRANSFORMER_HTTP_PORT/v2/models/$MODEL_NAME/infer \\
    -H 'Content-Type: application/json' \\
    -d '{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["I was charged twice this month"]}]}'

  make infer TEXT="where is my parcel?"          # REST
  $PY -m kserve_kit.client --grpc localhost:$TRANSFORMER_GRPC_PORT "reset my password"

Ctrl-C stops both servers.
MSG

# Exit (and stop the other) as soon as either server exits.
wait -n "${pids[@]}"
