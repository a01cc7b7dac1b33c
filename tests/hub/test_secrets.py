"""The model server's key stays out of what the server's kernels and terminals inherit: no hub
needed (the main suite runs this too; tests/hub/test_hub.py checks it in a real hub)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from oci_jupyter.config import OCI, keep_secrets_from_kernels


def test_the_engine_keeps_the_key_and_the_environment_loses_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OCI_OPENAI_API_KEY", "sk-team-key")
    engine = OCI(engine="openai", openai_base_url="http://127.0.0.1:9/v1").create_engine()
    assert keep_secrets_from_kernels() == ["OCI_OPENAI_API_KEY"]
    assert "OCI_OPENAI_API_KEY" not in os.environ
    assert engine._api_key == "sk-team-key"  # type: ignore[attr-defined]
    # A child process (a kernel, a terminal) started afterwards does not get it.
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ.get('OCI_OPENAI_API_KEY'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == "None"
    assert keep_secrets_from_kernels() == []
