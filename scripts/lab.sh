#!/usr/bin/env bash
# One command from a fresh clone to JupyterLab with oci_jupyter and the bundled model.
# Extra arguments go to `jupyter lab` (e.g. --port 8890, --no-browser).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh lab
# shellcheck disable=SC1091
source .venv/bin/activate
args=()
[[ "$(id -u)" == 0 ]] && args+=(--allow-root)  # Jupyter refuses root unless told
echo "== starting JupyterLab: open the OpenCodeInterpreter panel on the right (Accel+Shift+1)"
exec jupyter lab "${args[@]}" "$@"
