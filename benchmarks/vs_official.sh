#!/usr/bin/env bash
# Warpaint beside the official CoCosNet v2 inference in one run (512x512, 2 threads): prints one
# JSON line with the fastest run of each side, stages, peak RSS, the load average and the ratios,
# then a table on stderr. Every figure in docs/performance.md comes from this.
#
#   benchmarks/vs_official.sh [--rounds 2] [--extra "fp32_fast=--allocator fast"] [--out r.json]
#
# PYTHON=... picks the interpreter (default: the repo's .venv, else python3). ~4 min a round here.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
echo "$(date -u +%FT%TZ) $(uptime)" >&2
exec "$PY" benchmarks/vs_official.py "$@"
