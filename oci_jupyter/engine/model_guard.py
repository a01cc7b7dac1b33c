"""A guard that lets any thread read a native model while it exists, and frees it only when
no reader holds it.

llama.cpp's tokenizer is safe to call from several threads at once, but not while another
thread frees the model under it: that is a segfault that takes the whole Jupyter server
down. Token counting runs in worker threads (the chat's prompt budget, ``/oci/tokenize``)
while *Restart model* releases the model; every such use goes through :meth:`ModelGuard.hold`
and the release waits for the holders to finish.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ModelReleased(RuntimeError):
    """The model is not loaded (not yet, or released by a restart or shutdown)."""


class ModelGuard(Generic[T]):
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._model: T | None = None
        self._holders = 0

    @property
    def model(self) -> T | None:
        """The model, for the thread that owns it (the worker that computes with it)."""
        return self._model

    def set(self, model: T | None) -> None:
        with self._changed:
            self._model = model

    @contextlib.contextmanager
    def hold(self) -> Iterator[T]:
        """The model, kept alive until the block ends; :class:`ModelReleased` without one."""
        with self._changed:
            model = self._model
            if model is None:
                raise ModelReleased("the model is not loaded")
            self._holders += 1
        try:
            yield model
        finally:
            with self._changed:
                self._holders -= 1
                self._changed.notify_all()

    def take(self, timeout: float | None = None) -> T | None:
        """Take the model away for freeing: no new holder gets it from now on, and this waits
        until the current holders are done (``timeout``: at most that long; the caller must
        then not free it)."""
        with self._changed:
            model, self._model = self._model, None
            if not self._changed.wait_for(lambda: self._holders == 0, timeout):
                return None
            return model

    @property
    def holders(self) -> int:
        return self._holders


def close_quietly(model: Any) -> None:
    """Free a native model, ignoring a model that fails to close."""
    if model is not None:
        with contextlib.suppress(Exception):
            model.close()
