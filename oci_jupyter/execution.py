"""Running generated code for the Python drivers of the loop.

``InKernelExecutor`` runs code inside the current IPython kernel, in the user's namespace,
exactly as if the user had run a cell: outputs appear in the cell, variables persist. The text
of what it printed, returned or raised comes back as an :class:`ExecutionOutcome`.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from .loop import ExecutionOutcome
from .prompts import strip_ansi


class _Tee(io.TextIOBase):
    """Writes go to the cell as usual and into a buffer for the model."""

    def __init__(self, target: TextIO, buffer: io.StringIO) -> None:
        self._target = target
        self._buffer = buffer

    def write(self, text: str) -> int:
        self._buffer.write(text)
        return self._target.write(text)

    def flush(self) -> None:
        self._target.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, encoding, ... of the real stream
        return getattr(self._target, name)


class _Deadline:
    """Interrupts the main thread after ``seconds``, as Jupyter's interrupt button does."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.fired = False
        self._timer: threading.Timer | None = None

    def __enter__(self) -> _Deadline:
        if self.seconds and threading.current_thread() is threading.main_thread():
            self._timer = threading.Timer(self.seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def _fire(self) -> None:
        self.fired = True
        # A real SIGINT also wakes blocking calls such as time.sleep, unlike interrupt_main().
        os.kill(os.getpid(), signal.SIGINT)

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()


class InKernelExecutor:
    """Runs code in an IPython shell's user namespace, with a time limit."""

    def __init__(self, shell: Any, time_limit: float | None = 120.0) -> None:
        self.shell = shell
        self.time_limit = time_limit

    def run(self, code: str) -> ExecutionOutcome:
        buffer = io.StringIO()
        started = time.monotonic()
        deadline = _Deadline(self.time_limit)
        try:
            with self._tee(buffer), deadline:
                result = self.shell.run_cell(code, store_history=False, silent=False)
        except KeyboardInterrupt:
            # Arrived between the cell's end and the timer's cancel: the code itself finished.
            result = None
        seconds = time.monotonic() - started
        output = buffer.getvalue()
        if result is not None and result.result is not None:
            output += _repr(result.result)
        error = None
        if result is not None:
            error = result.error_before_exec or result.error_in_exec
        if error is None:
            return ExecutionOutcome("ok", output=output, seconds=seconds)
        if isinstance(error, KeyboardInterrupt):
            status = "timeout" if deadline.fired else "cancelled"
            return ExecutionOutcome(
                status, output=output, seconds=seconds, time_limit=self.time_limit
            )
        return ExecutionOutcome(
            "error",
            output=output,
            ename=type(error).__name__,
            evalue=str(error),
            traceback=self._traceback(error),
            seconds=seconds,
        )

    @contextmanager
    def _tee(self, buffer: io.StringIO) -> Iterator[None]:
        saved = sys.stdout, sys.stderr
        sys.stdout = _Tee(saved[0], buffer)  # type: ignore[assignment]
        sys.stderr = _Tee(saved[1], buffer)  # type: ignore[assignment]
        try:
            yield
        finally:
            sys.stdout, sys.stderr = saved

    def _traceback(self, error: BaseException) -> str:
        """IPython's own rendering (the user's frames only), without colours."""
        try:
            formatter = self.shell.InteractiveTB
            lines = formatter.structured_traceback(
                type(error), error, error.__traceback__, tb_offset=formatter.tb_offset
            )
            return strip_ansi("\n".join(lines))
        except Exception:
            import traceback

            return "".join(traceback.format_exception(error))


def _repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:
        text = f"<unrepresentable {type(value).__name__}: {exc}>"
    return text if text.endswith("\n") else text + "\n"
