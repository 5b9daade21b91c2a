#!/usr/bin/env bash
# bash scripts/gpu_check.sh            on a GPU machine: measured peak memory and tokens/s at real size, with the
#                                      planner's estimates (one JSON line a case; under 5 minutes on one H100)
# bash scripts/gpu_check.sh --dry-run  the same script on the CPU at 1 decoder layer (tests/sizing/test_gpu_check.py)
# Needs the project installed (pip install -e .), with bitsandbytes for the QLoRA case.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" -m unified_reward.sizing.gpu_check "$@"
