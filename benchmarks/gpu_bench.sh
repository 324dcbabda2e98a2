#!/usr/bin/env bash
# GPU figures for docs/performance.md: `python -m core bench` on CUDA at 512x512 (official preset,
# random weights), fp32 / bf16 / fp16 autocast, channels_last, torch.compile off and on; then the
# same at 1024x1024 in fp16. Prints one JSON line per run (an {"error": ...} line for a run that
# fails or times out). About 3-4 minutes on an H100, torch import included.
#
#   benchmarks/gpu_bench.sh [RESOLUTION] [PRESET]        (PYTHON=... to pick the interpreter)
#
# Assumes a CUDA build of torch. If safetensors is not installed there, a stand-in module is
# put on PYTHONPATH for the run (bench times random weights and never reads or writes a checkpoint).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RES=${1:-512}
PRESET=${2:-official}
export PYTHONUNBUFFERED=1

"$PY" - <<'EOF'
import json, platform, torch
gpu = torch.cuda.is_available()
print(json.dumps({"env": True, "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
                  "gpu": torch.cuda.get_device_name(0) if gpu else None,
                  "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if gpu else None}))
EOF

if ! "$PY" -c "import safetensors.torch" 2>/dev/null; then
  STUB=$(mktemp -d)
  mkdir -p "$STUB/safetensors"
  cat > "$STUB/safetensors/__init__.py" <<'EOF'
class SafetensorError(Exception):
    """Stand-in: safetensors is not installed (benchmark only)."""
EOF
  cat > "$STUB/safetensors/torch.py" <<'EOF'
def load_file(*args, **kwargs):
    raise OSError("safetensors is not installed here (benchmark stand-in)")


def save_file(*args, **kwargs):
    raise OSError("safetensors is not installed here (benchmark stand-in)")
EOF
  export PYTHONPATH="$STUB${PYTHONPATH:+:$PYTHONPATH}"
  echo '{"note": "safetensors missing: stand-in module used (no checkpoint is read)"}'
fi

run() {  # run SECONDS ARGS...: one bench, its JSON line or an error line
  local limit=$1; shift
  timeout "$limit" "$PY" -m core bench --device cuda --preset "$PRESET" "$@" \
    || echo "{\"error\": \"bench $* failed or timed out after ${limit}s\"}"
}

run 150 --resolution "$RES" --precision all --repeats 10 --warmup 3
run 240 --resolution "$RES" --precision all --repeats 10 --warmup 2 --compile --no-dense
run 90 --resolution $((RES * 2)) --precision fp16 --repeats 3 --warmup 1 --no-dense
