#!/usr/bin/env bash
# Quick start on a fresh machine (Python >= 3.10, from a clone): install pifi with the test tools and the offline demo
# assets, then run the main job, `pifi demo`. Extra arguments go to `pifi demo` (e.g. --quick, --seeds 3).
# Takes ~8 min on 2 idle CPU cores after the downloads (the demo: 7.6 min measured; --quick: ~1 min); downloads: torch (see
# below), pifi's dependencies (~100 MB) and the demo assets (~190 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "quickstart: installs, then runs pifi demo: ~8 min on 2 CPU cores after the downloads (--quick: ~1 min)"

# 1. torch. Kept if it is already installed (e.g. your CUDA build). Otherwise torch 2.13.0 from your package index:
#    on Linux, PyPI's torch is the CUDA build, which pulls ~20 nvidia-*/triton wheels (several GB); on macOS and
#    Windows it is the CPU build. For a CPU-only Linux machine (a laptop), use PyTorch's CPU wheel index (~190 MB):
#      PIFI_TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/quickstart.sh
if python -c "import torch" 2>/dev/null; then
  echo "quickstart: torch $(python -c 'import torch; print(torch.__version__)') is already installed: kept"
elif [ -n "${PIFI_TORCH_INDEX_URL:-}" ]; then
  echo "quickstart: installing torch 2.13.0 from $PIFI_TORCH_INDEX_URL"
  python -m pip install torch==2.13.0 --index-url "$PIFI_TORCH_INDEX_URL"
else
  echo "quickstart: installing torch 2.13.0 from your package index (on Linux from PyPI: the CUDA build, several GB;"
  echo "            CPU only: PIFI_TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/quickstart.sh)"
  python -m pip install torch==2.13.0
fi

# 2. pifi from this clone, with what the demo (gguf, matplotlib) and the test suite (pytest, ...) need.
echo "quickstart: installing pifi with the demo and test extras"
python -m pip install -e ".[demo,test]"

# 3. The demo assets (a folder of pifi's own; pip's view of the environment stays consistent: `pip check`).
bash scripts/install_demo_assets.sh

# 4. The main job: `pifi demo` (run as `python -m cli`, the same entry point, so a shell whose PATH has not picked up
#    the new `pifi` script yet still finds it).
echo "quickstart: pifi demo $*"
python -m cli demo "$@"
