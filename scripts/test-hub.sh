#!/usr/bin/env bash
# Runs the JupyterHub tests (tests/hub): a real JupyterHub with two users, each with their own
# single-user server running oci_jupyter with c.OCI.engine = "openai", all pointed at one
# shared model server on loopback (a Jupyter server with oci_jupyter and a scripted engine).
#
# JupyterHub and its proxy are not dependencies of the product, so they live in their own
# places, created on first use and reused afterwards: .venv-hub (jupyterhub, jupyter_server,
# ipykernel, the light runtime deps of oci_jupyter, pytest) and .hub-tools
# (configurable-http-proxy from npm). The project is not pip-installed (an editable install
# would run the JS build): the repository is put on PYTHONPATH. Extra arguments go to pytest.
# Exits with pytest's exit code. The test itself reaches nothing beyond 127.0.0.1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${HUB_VENV:-.venv-hub}"
TOOLS="${HUB_TOOLS:-.hub-tools}"
PYTHON="${PYTHON:-python3.11}"
HUB_SPEC="jupyterhub==6.1.1"
CHP_SPEC="configurable-http-proxy@5.3.0"
DEPS=(
    "$HUB_SPEC" "jupyter_server>=2.21,<3" "ipykernel>=6.29" "nbformat>=5.10"
    "tornado>=6.4" "traitlets>=5.14" "pydantic>=2.7,<3" "httpx>=0.27" "openai>=1.40"
    "pytest>=8" "pytest-timeout>=2.3"
)
STAMP_TEXT="${DEPS[*]}"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# pip, without the warnings about this machine kind's empty local index folders.
pip() { "$PY" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }

t_install=$(now)
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "== creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
STAMP="$VENV/.oci-jupyter-hub-stamp"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_TEXT" ]]; then
    echo "== $VENV is up to date ($HUB_SPEC)"
else
    echo "== installing $HUB_SPEC, jupyter_server and the test deps into $VENV"
    rm -f "$STAMP"
    pip install --quiet "${DEPS[@]}"
    echo "$STAMP_TEXT" >"$STAMP"
fi
CHP="$TOOLS/node_modules/.bin/configurable-http-proxy"
if [[ ! -x "$CHP" || "$(cat "$TOOLS/.stamp" 2>/dev/null)" != "$CHP_SPEC" ]]; then
    echo "== installing $CHP_SPEC into $TOOLS"
    mkdir -p "$TOOLS"
    # A folder of its own with its own package.json: npm must not touch the project's.
    [[ -f "$TOOLS/package.json" ]] || echo '{"name": "oci-hub-tools", "private": true}' >"$TOOLS/package.json"
    (cd "$TOOLS" && npm install --silent --no-audit --no-fund --no-save "$CHP_SPEC")
    echo "$CHP_SPEC" >"$TOOLS/.stamp"
fi
"$PY" - <<'PY'
import importlib.metadata as md
print("== versions:", ", ".join(f"{p} {md.version(p)}" for p in ("jupyterhub", "jupyter_server", "tornado")))
PY
echo "== configurable-http-proxy $("$CHP" --version)"
echo "== install step: $(elapsed "$t_install") s"

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OCI_HUB_PROXY="$PWD/$CHP"
# The hub's, the servers' and the kernels' state goes to the test's temporary folders, and
# nothing reaches a model hub.
export HF_HUB_OFFLINE=1 OCI_HUB_OFFLINE=1 DO_NOT_TRACK=1

t_test=$(now)
status=0
# --confcutdir: the main suite's tests/conftest.py needs plugins this venv does not have.
"$PY" -m pytest tests/hub -p no:cacheprovider --confcutdir=tests/hub -ra "$@" || status=$?
echo "== test step: $(elapsed "$t_test") s (pytest exit code $status)"
exit "$status"
