#!/usr/bin/env bash
# Quick start on a fresh machine: install pifi and the offline demo assets, then run the main job, `pifi demo`.
# Extra arguments go to `pifi demo` (e.g. --quick, --seeds 3).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q torch==2.13.0    # the CPU wheel; install the CUDA build of your choice instead on a GPU box
python -m pip install -q -e ".[demo]"
bash scripts/install_demo_assets.sh
pifi demo "$@"
