#!/usr/bin/env bash
# One command from a fresh machine to a running node: installs exo-rkllm into ./.venv, then serves the
# OpenAI-compatible API on port 52415. On an RK3588 board with librkllmrt.so 1.2.3 it serves the NPU;
# anywhere else it says so and starts the SIMULATED runtime (scripted answers, no NPU).
# Extra arguments go to `exo-rkllm serve` (for example --model qwen2.5-1.5b-instruct --host 0.0.0.0).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
if .venv/bin/python -c "import rkllm, sys; rkllm.load_library()" >/dev/null 2>&1; then
  exec .venv/bin/exo-rkllm serve "$@"
fi
cat >&2 <<'MSG'
==============================================================================================
 No RKLLM runtime (librkllmrt.so 1.2.3) was found: this is not an RK3588 board set up for the NPU.
 Starting the SIMULATED runtime instead: answers are scripted and timed like Rockchip's published
 RK3588 figures, but no NPU is involved. On a board, install the runtime (docs/deployment.md) and
 `exo-rkllm serve` uses it; `exo-rkllm doctor` says what is missing.
==============================================================================================
MSG
exec .venv/bin/exo-rkllm serve --simulate "$@"
