#!/usr/bin/env bash
# Fetches the ONNX Runtime shared library for the `ort` backend without installing the Python
# package: downloads the onnxruntime wheel from PyPI and unpacks only libonnxruntime from it.
# Prints the library's path on stdout (export it as ORT_DYLIB_PATH). Skips work already done.
#
# Usage: scripts/install_onnxruntime.sh [cache dir]   (default: <repo>/.ort)
# Env:   ORT_VERSION (default 1.32.0; PyPI's wheels carry the library from 1.19.0 on),
#        ORT_PACKAGE (default onnxruntime; or onnxruntime-gpu)
# The library does not depend on the Python version, so when this python3 has no wheel of that
# release (1.19 has none for 3.13, 1.24 and newer none for 3.10), the wheel of another Python is taken.
set -euo pipefail

version="${ORT_VERSION:-1.32.0}"
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
pip_log="$wheels/pip-download.log"
download() {
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$wheels" "$@" "$package==$version" \
        >"$pip_log" 2>&1
}
if ! compgen -G "$wheels/${package//-/_}-$version-*.whl" >/dev/null; then
    echo "install_onnxruntime: downloading $package==$version" >&2
    if ! download; then
        for py in 3.12 3.11 3.10 3.13; do
            echo "install_onnxruntime: none for this python; trying the wheel for Python $py" >&2
            download --python-version "$py" && break
        done
    fi
fi
wheel="$(compgen -G "$wheels/${package//-/_}-$version-*.whl" | head -n1 || true)"
if [[ -z "$wheel" ]]; then
    echo "install_onnxruntime: no $package==$version wheel for this platform (Python 3.10-3.13 tried); pip said:" >&2
    cat "$pip_log" >&2
    exit 1
fi

# A wheel is a zip; Python's zipfile avoids depending on `unzip` being installed.
tmp="$lib.partial"
"$python" - "$wheel" "$member" "$tmp" <<'PY'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    if member not in z.namelist():
        sys.exit(f"install_onnxruntime: {wheel} has no {member} (PyPI's wheels carry it from 1.19.0 on)")
    with z.open(member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
PY
mv "$tmp" "$lib"
echo "$lib"
