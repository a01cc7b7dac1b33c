"""A Python script in a new, short-lived process under a time limit: how the hidden tests
(:func:`.kernels.run_hidden_tests`) and the judge (:func:`.judging.run_judge`) both run, never
in the kernel the model's code ran in.

The process gets a session of its own, so that a time-out (or the caller's cancellation)
kills everything the model's code started, not just the interpreter. The caller owns the
folder the script runs in, and reads what the script left there before removing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ScriptRun:
    """How the script's process ended."""

    returncode: int | None
    stderr: str
    """What it wrote to stderr, decoded (bad bytes replaced); "" if it timed out."""
    timed_out: bool
    seconds: float

    def failure(self) -> str:
        """Why it failed, in one line: the signal that killed it, else stderr's last line
        (the error of a traceback), else its exit status."""
        if self.returncode is not None and self.returncode < 0:
            return f"killed by signal {-self.returncode}"
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1].strip() if lines else f"exit status {self.returncode}"


async def run_script(script: Path, *args: str, cwd: Path, time_limit: float) -> ScriptRun:
    """Run ``python -I -B script *args`` in ``cwd`` with no stdin, stdout thrown away and
    stderr kept; past ``time_limit`` seconds its whole process group is killed."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-B",
        str(script),
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    timed_out, stderr = False, b""
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), time_limit)
    except TimeoutError:
        timed_out = True
        _kill_group(process.pid)
        await process.wait()
    finally:
        # Cancelled (or failed) while it ran: nothing of it may outlive the call.
        if process.returncode is None:
            _kill_group(process.pid)
            with contextlib.suppress(ProcessLookupError):
                await process.wait()
    return ScriptRun(
        process.returncode,
        stderr.decode("utf-8", "replace"),
        timed_out,
        time.monotonic() - started,
    )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
