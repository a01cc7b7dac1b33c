"""OpenCodeInterpreter inside JupyterLab: a locally hosted code model that writes code, runs it
in your kernel, reads the result and refines it."""

from __future__ import annotations

from typing import Any

from .version import __version__

__all__ = ["__version__"]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "oci-jupyter"}]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import OCIExtension

    return [{"module": "oci_jupyter", "app": OCIExtension}]


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext oci_jupyter``: the %%oci and %oci magics."""
    from .magic import load_ipython_extension as load

    load(shell)
