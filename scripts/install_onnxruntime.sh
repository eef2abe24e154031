#!/usr/bin/env bash
# Fetches the ONNX Runtime shared library for the `ort` backend without installing the Python
# package: downloads the onnxruntime wheel from PyPI and unpacks only libonnxruntime from it.
# Prints the library's path on stdout (export it as ORT_DYLIB_PATH). Skips work already done.
#
# Usage: scripts/install_onnxruntime.sh [cache dir]   (default: <repo>/.ort)
# Env:   ORT_VERSION (default 1.31.1), ORT_PACKAGE (default onnxruntime; or onnxruntime-gpu)
set -euo pipefail

version="${ORT_VERSION:-1.31.1}"
package="${ORT_PACKAGE:-onnxruntime}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${1:-$repo/.ort}"
member="onnxruntime/capi/libonnxruntime.so.$version"
lib="$cache/$package-$version/libonnxruntime.so.$version"

if [[ -f "$lib" ]]; then
    echo "$lib"
    exit 0
fi

python="$(command -v python3 || command -v python || true)"
if [[ -z "$python" ]]; then
    echo "install_onnxruntime: python3 with pip is needed to download the $package wheel" >&2
    exit 1
fi

wheels="$cache/wheels"
mkdir -p "$wheels" "$(dirname "$lib")"
if ! compgen -G "$wheels/${package//-/_}-$version-*.whl" >/dev/null; then
    echo "install_onnxruntime: downloading $package==$version" >&2
    "$python" -m pip download --quiet --no-deps --only-binary=:all: \
        --dest "$wheels" "$package==$version" >&2
fi
wheel="$(compgen -G "$wheels/${package//-/_}-$version-*.whl" | head -n1)"

# A wheel is a zip; Python's zipfile avoids depending on `unzip` being installed.
tmp="$lib.partial"
"$python" - "$wheel" "$member" "$tmp" <<'PY'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out)
PY
mv "$tmp" "$lib"
echo "$lib"
