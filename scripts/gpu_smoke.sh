#!/usr/bin/env bash
# The gpu profile at a tiny scale, end to end on one GPU: every notebook, 3 tools, a few instances,
# a few training steps (scripts/gpu_smoke_profile.py), in _build/gpu_smoke/ with its own runs/ and
# executed notebooks: nothing of a real `PROFILE=gpu make book` is read or overwritten.
#
#   scripts/gpu_smoke.sh             run it; exits 2, saying why, when there is no GPU to run on
#   scripts/gpu_smoke.sh --dry-run   print the commands it would run (book/gpu.md shows them), run nothing
#
# With vLLM installed (.venv-vllm/bin/vllm, `make setup-vllm`) the teacher and the student are two
# vLLM servers sharing the GPU, as in book/gpu.md; without it, the embedded llama.cpp servers (on
# the CPU) with the packaged SmolLM2-135M, and the GPU does the training only.
# Environment: PY (the book's python), VLLM, SMOKE_DIR, SMOKE_MODEL (what both vLLM servers serve:
# an HF id in the local cache or a directory), VLLM_GPU_SHARE (GPU memory share of each server; the
# rest is the training's), SERVER_WAIT_S (how long a server may take to start).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
VLLM=${VLLM:-.venv-vllm/bin/vllm}
SMOKE_DIR=${SMOKE_DIR:-_build/gpu_smoke}
SMOKE_MODEL=${SMOKE_MODEL:-HuggingFaceTB/SmolLM2-1.7B-Instruct}
VLLM_GPU_SHARE=${VLLM_GPU_SHARE:-0.3}
SERVER_WAIT_S=${SERVER_WAIT_S:-900}
TEACHER_PORT=8100   # not the gpu profile's 8000/8001: a real run's servers may be up
STUDENT_PORT=8101

DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "usage: scripts/gpu_smoke.sh [--dry-run]" >&2; exit 64 ;;
esac

die() { echo "gpu_smoke: FAILED: $*" >&2; exit 1; }
refuse() { echo "gpu_smoke: no GPU to run on: $*" >&2; exit 2; }
show() { echo "+ $*"; }
run() { show "$*"; [ "$DRY" = 1 ] || "$@"; }

require_gpu() {
  command -v nvidia-smi >/dev/null 2>&1 || refuse "nvidia-smi is not on PATH (no NVIDIA driver on this machine)"
  nvidia-smi -L >/dev/null 2>&1 || refuse "nvidia-smi -L finds no GPU"
  [ -x "$PY" ] || refuse "$PY does not exist: run \`make setup PROFILE=gpu\` first"
  "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
    || refuse "torch.cuda.is_available() is False in $PY (torch $("$PY" -c 'import torch; print(torch.__version__)')): a CPU build? run \`make setup PROFILE=gpu\`"
}

SERVER_PIDS=()
stop_servers() {  # each server was started in a session of its own: stop its whole group (vLLM forks workers)
  local pid
  for pid in ${SERVER_PIDS[@]+"${SERVER_PIDS[@]}"}; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in ${SERVER_PIDS[@]+"${SERVER_PIDS[@]}"}; do wait "$pid" 2>/dev/null || true; done
}

start_server() {  # NAME PORT COMMAND...: start it in the background, its output in SMOKE_DIR/NAME.log
  local name=$1 port=$2 log="$SMOKE_DIR/$1.log"
  shift 2
  show "$* > $log 2>&1 &"
  [ "$DRY" = 1 ] && return 0
  setsid "$@" > "$log" 2>&1 &
  SERVER_PIDS+=($!)
  wait_ready "$name" "$port" "$!" "$log"
}

wait_ready() {  # NAME PORT PID LOG: until GET /v1/models answers; the log's tail if the server dies
  local name=$1 port=$2 pid=$3 log=$4 deadline=$((SECONDS + SERVER_WAIT_S))
  show "curl -sf http://127.0.0.1:$port/v1/models    # until the $name answers"
  until curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$log" >&2
      die "the $name server exited while starting (log: $log)"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "the $name server did not answer within ${SERVER_WAIT_S}s (log: $log)"
    sleep 5
  done
}

[ "$DRY" = 1 ] || require_gpu
[ "$DRY" = 1 ] || trap stop_servers EXIT
run rm -rf "$SMOKE_DIR/runs" "$SMOKE_DIR/book/executed"   # a smoke run starts from nothing
run mkdir -p "$SMOKE_DIR"

if [ -x "$VLLM" ]; then
  echo "gpu_smoke: vLLM found ($VLLM): teacher on :$TEACHER_PORT, student with LoRA on :$STUDENT_PORT"
  start_server vllm-teacher "$TEACHER_PORT" "$VLLM" serve "$SMOKE_MODEL" --port "$TEACHER_PORT" \
    --gpu-memory-utilization "$VLLM_GPU_SHARE" --max-model-len 8192
  start_server vllm-student "$STUDENT_PORT" env VLLM_ALLOW_RUNTIME_LORA_UPDATING=True "$VLLM" serve "$SMOKE_MODEL" \
    --port "$STUDENT_PORT" --gpu-memory-utilization "$VLLM_GPU_SHARE" --max-model-len 8192 \
    --enable-lora --max-lora-rank 64 --max-loras 8
  ENDPOINTS=(--teacher-endpoint "http://127.0.0.1:$TEACHER_PORT/v1" --teacher-model "$SMOKE_MODEL"
             --student-endpoint "http://127.0.0.1:$STUDENT_PORT/v1" --student-model "$SMOKE_MODEL" --dialect openai)
else
  echo "gpu_smoke: no vLLM at $VLLM: embedded llama.cpp teacher and student (SmolLM2-135M); the GPU trains"
  ENDPOINTS=(--teacher-endpoint embedded --teacher-model smollm2-135m-instruct
             --student-endpoint embedded --student-model smollm2-135m-instruct --dialect llama_cpp --small-models)
fi

run "$PY" scripts/gpu_smoke_profile.py --out "$SMOKE_DIR/gpu_smoke.yaml" "${ENDPOINTS[@]}"
# absolute: the notebooks run with notebooks/ as their working directory
run env TOOLALPACA_RUNS="$PWD/$SMOKE_DIR/runs" "$PY" -m toolalpaca_utils.book --profile "$SMOKE_DIR/gpu_smoke.yaml" \
  --source "$SMOKE_DIR" --no-build
# the point of the smoke: the training ran on the GPU, in bf16, as the gpu profile asks
MANIFEST="$SMOKE_DIR/runs/gpu_smoke/training/manifest.json"
show "grep '\"device\": \"cuda bf16\"' $MANIFEST"
[ "$DRY" = 1 ] && exit 0
grep -q '"device": "cuda bf16"' "$MANIFEST" \
  || die "notebook 03 did not train on the GPU in bf16: $(grep '"device"' "$MANIFEST" || echo "no device in $MANIFEST")"
echo "gpu_smoke: OK: every notebook ran, training on cuda bf16; executed notebooks in $SMOKE_DIR/book/executed"
