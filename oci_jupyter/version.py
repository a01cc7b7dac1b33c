"""The package's version, for the package and its endpoints alike (the handlers read it here,
not through the package's ``__init__``, which loads the server extension)."""

from __future__ import annotations

try:
    from ._version import __version__
except ImportError:  # a source tree that was never built
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
