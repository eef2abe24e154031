#!/usr/bin/env bash
# Drives `vjx serve` with openpi's own client from PyPI (openpi-client 0.1.2), in a venv of
# its own (target/serve-venv): same actions as `vjx run`, bad requests answered with named
# errors on a connection that stays usable, API keys, shutdown. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${VJX_SERVE_VENV:-target/serve-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/serve/requirements.txt
cargo build --quiet --locked --bin vjx
VJX_BIN="$PWD/target/debug/vjx" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/serve "$@"
