#!/usr/bin/env bash
# Creates the Python environment that runs the original DexVLA repository (juruobenruo/DexVLA @ fc21a82)
# to make the DexVLA golden fixtures. Only fixture generation needs it; CI and the Rust tests never do.
#
# Usage: tests/reference/setup_dexvla_env.sh [--src DIR] [--venv DIR]
#   --src DIR   a checkout of juruobenruo/DexVLA at fc21a82, or an unpacked `git archive fc21a82`.
#               Default: git clone https://github.com/juruobenruo/DexVLA + checkout fc21a82.
#   --venv DIR  default: .venv-dexvla at the repo root.
#
# The venv pins what the DexVLA repository pins (requirements.txt): transformers 4.45.2, tokenizers 0.20.1,
# timm 0.9.10, qwen-vl-utils 0.0.8, plus huggingface_hub 0.36.2 (the newest release that both transformers
# 4.45.2 (<1.0) and diffusers 0.39 (>=0.34) accept). torch, torchvision, diffusers, numpy, pillow, ... are NOT
# downloaded again: a .pth file appends .venv-ref's site-packages after the venv's own, so the packages
# installed here win and everything else comes from .venv-ref (tests/reference/setup_env.sh).
# The DexVLA source is copied to $VENV/src; another .pth puts $VENV/src (qwen2_vla, policy_heads, ...) and
# $VENV/src/policy_heads (its `models` namespace package, what `pip install -e policy_heads` provides) on
# sys.path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ref=$root/.venv-ref
venv=$root/.venv-dexvla
src=""
commit=fc21a82
repo_url=https://github.com/juruobenruo/DexVLA

while [ $# -gt 0 ]; do
    case "$1" in
        --src) src=$(cd "$2" && pwd); shift 2 ;;
        --venv) venv=$2; shift 2 ;;
        -h|--help) sed -n 2,17p "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [ ! -x "$ref/bin/python" ]; then
    echo "error: $ref not found. Run tests/reference/setup_env.sh first (it provides torch/torchvision/diffusers)." >&2
    exit 1
fi
base_py=$("$ref/bin/python" -c 'import sys; print(sys._base_executable)')
ref_site=$("$ref/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for mod in torch torchvision diffusers numpy PIL; do
    "$ref/bin/python" -c "import $mod" 2>/dev/null || { echo "error: $ref lacks $mod; rerun tests/reference/setup_env.sh" >&2; exit 1; }
done

[ -x "$venv/bin/python" ] || "$base_py" -m venv "$venv"
py=$venv/bin/python
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

# ---- DexVLA source ------------------------------------------------------------------------------------
mkdir -p "$venv"
venv_src=$(cd "$venv" && pwd)/src
if [ -n "$src" ] && [ "$src" = "$venv_src" ]; then
    :  # already in place
elif [ -n "$src" ]; then
    rm -rf "$venv/src"
    mkdir -p "$venv/src"
    (cd "$src" && tar --exclude=.git -cf - .) | (cd "$venv/src" && tar -xf -)
else
    rm -rf "$venv/src"
    git clone -q "$repo_url" "$venv/src"
    git -C "$venv/src" checkout -q "$commit"
fi
# Git blob ids of the files the fixtures run, at fc21a82 (works for a checkout and an unpacked archive).
"$base_py" - "$venv/src" <<'EOF'
import hashlib, pathlib, sys
want = {
    "evaluate/smart_eval_agilex.py": "a33f877b1fa7e4ec4d128a9c7de54884e94d55bd",
    "policy_heads/models/transformer_diffusion/configuration_scaledp.py": "982c98d8d489e2336c771fb41c49938326603c5b",
    "policy_heads/models/transformer_diffusion/modeling_scaledp.py": "e2cb001a75730717f7de5032d8bd6b49166ec4ce",
    "qwen2_vla/model_load_utils.py": "d7529bfd66b9ecd9a2e0d84936f4d82522e8c0e4",
    "qwen2_vla/models/configuration_qwen2_vla.py": "33116dbf04c5a4e9a933aab717f820db73b66d57",
    "qwen2_vla/models/modeling_qwen2_vla.py": "e47fe3d25cd9fbb6c2a38c97da83ef321c033a49",
    "qwen2_vla/utils/fusion_modules.py": "88b9fdd1446ea4159437ef2d1dd82a5671982438",
    "qwen2_vla/utils/image_processing_qwen2_vla.py": "db33f7c639021e1b538ebdc1f931986e6230be75",
    "qwen2_vla/utils/processing_qwen2_vla.py": "25c302738154e37e033d839d578c39eb8b66ea59",
}
root = pathlib.Path(sys.argv[1])
bad = []
for rel, blob in want.items():
    p = root / rel
    if not p.is_file():
        bad.append(f"{rel}: missing")
        continue
    data = p.read_bytes()
    got = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    if got != blob:
        bad.append(f"{rel}: blob {got}, expected {blob} (fc21a82)")
if bad:
    sys.exit("error: the DexVLA source is not commit fc21a82:\n  " + "\n  ".join(bad))
print("DexVLA source matches fc21a82")
EOF

# ---- packages -----------------------------------------------------------------------------------------
# --no-deps: every dependency not pinned here (torch, numpy, safetensors, regex, pyyaml, ...) comes from
# .venv-ref through the .pth below.
"$py" -m pip install -q --disable-pip-version-check --no-deps \
    transformers==4.45.2 tokenizers==0.20.1 huggingface_hub==0.36.2 timm==0.9.10 qwen-vl-utils==0.0.8
echo "$venv/src" > "$site/dexvla_src.pth"
echo "$venv/src/policy_heads" >> "$site/dexvla_src.pth"
# .pth files are processed in name order and their entries appended after $site: src first, then .venv-ref.
echo "$ref_site" > "$site/zz_venv_ref_site.pth"

"$py" - <<'EOF'
import sys
import diffusers, huggingface_hub, timm, tokenizers, torch, torchvision, transformers
want = {transformers: "4.45.2", tokenizers: "0.20.1", timm: "0.9.10", huggingface_hub: "0.36.2"}
for mod, ver in want.items():
    assert mod.__version__ == ver, (mod.__name__, mod.__version__, ver)
    assert mod.__file__.startswith(sys.prefix), (mod.__name__, mod.__file__)
print(f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}, timm {timm.__version__}, "
      f"huggingface_hub {huggingface_hub.__version__}, torch {torch.__version__}, torchvision "
      f"{torchvision.__version__}, diffusers {diffusers.__version__}")
EOF
echo "DexVLA reference env ready: $venv"
