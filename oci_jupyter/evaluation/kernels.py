"""Where the model's code runs: real Jupyter kernels, and a separate process for the hidden tests.

:class:`KernelSession` owns one ipykernel through jupyter_client's ``AsyncKernelManager``. Each
problem gets a fresh kernel (:meth:`KernelSession.fresh`); the turns of one problem share it,
as the cells of a notebook do. A run that passes its time limit is interrupted, as Jupyter's
interrupt button does; a kernel that does not come back from the interrupt is restarted. A
kernel that dies raises :class:`KernelDied`, and the next :meth:`~KernelSession.fresh` starts a
new one.

:func:`run_hidden_tests` runs a program in its own short-lived Python process (never in the
kernel the model's code ran in), with a time limit and a memory limit.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import IO, Any, Literal

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager

from ..loop import ExecutionOutcome
from .timed_process import run_script

MEMORY_LIMIT = 4 * 1024**3
"""Address-space limit (bytes) of the model's code, in the kernel and in the hidden tests:
a runaway list must fail its problem, not the machine."""
INTERRUPT_GRACE = 3.0
"""Seconds a kernel gets to stop after an interrupt before it is restarted."""
POLL = 0.25

# Run silently in every fresh kernel before the model's code, and put before the hidden tests.
_MEMORY_LIMIT_SETUP = """\
import resource as _r
_r.setrlimit(_r.RLIMIT_AS, ({limit}, {limit}))
del _r
"""


class KernelDied(RuntimeError):
    """The kernel process exited while it ran the model's code."""


Recovery = Literal["", "interrupted", "restarted"]


@dataclass(frozen=True)
class KernelRun:
    """An execution outcome, and what it took to get the kernel back."""

    outcome: ExecutionOutcome
    recovery: Recovery = ""


class KernelSession:
    """One Jupyter kernel for one evaluation worker."""

    def __init__(
        self,
        *,
        workdir: Path,
        kernel_name: str = "python3",
        startup_timeout: float = 120.0,
        memory_limit: int | None = MEMORY_LIMIT,
        interrupt_grace: float = INTERRUPT_GRACE,
        log_path: Path | None = None,
    ) -> None:
        self.workdir = workdir
        # The kernel's stderr (default: workdir/kernel.log); elsewhere when the working
        # folder must hold only the user's files (DABench: the model may list them).
        self.log_path = log_path
        self.kernel_name = kernel_name
        self.startup_timeout = startup_timeout
        self.memory_limit = memory_limit
        self.interrupt_grace = interrupt_grace
        self.restarts = 0
        self.deaths = 0
        self._manager: AsyncKernelManager | None = None
        self._client: AsyncKernelClient | None = None
        self._log: IO[bytes] | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start a kernel (a new process with new ports)."""
        await self.shutdown()
        self.workdir.mkdir(parents=True, exist_ok=True)
        manager = AsyncKernelManager(kernel_name=self.kernel_name)
        env = dict(os.environ)
        env.pop("JPY_PARENT_PID", None)
        env["MPLBACKEND"] = "Agg"  # a plot must not try to open a window
        # The kernel's own stderr (its startup warnings, C-level writes of the model's code)
        # goes to a file, not over the progress bar.
        # Kept open for restarts, which launch the kernel with the same arguments.
        log_path = self.log_path or self.workdir / "kernel.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        await manager.start_kernel(
            cwd=str(self.workdir), env=env, stdout=subprocess.DEVNULL, stderr=self._log
        )
        self._manager = manager
        await self._connect()

    async def fresh(self) -> None:
        """A kernel with nothing in it, for the next problem."""
        manager = self._manager
        if manager is None or not await manager.is_alive():
            await self.start()
            return
        try:
            self._disconnect()
            await manager.restart_kernel(now=True)
            await self._connect()
        except Exception:  # a restart that fails for any reason: start over with a new one
            await self.start()
        self.restarts += 1

    async def shutdown(self) -> None:
        self._disconnect()
        manager, self._manager = self._manager, None
        if manager is not None:
            with contextlib.suppress(Exception):
                await manager.shutdown_kernel(now=True)
        log, self._log = self._log, None
        if log is not None:
            log.close()

    async def _connect(self) -> None:
        assert self._manager is not None
        client = self._manager.client()
        client.start_channels()
        self._client = client
        await client.wait_for_ready(timeout=self.startup_timeout)
        if self.memory_limit:
            setup = _MEMORY_LIMIT_SETUP.format(limit=self.memory_limit)
            client.execute(setup, silent=True, store_history=False, allow_stdin=False)

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.stop_channels()

    @property
    def alive_pid(self) -> int | None:
        """The kernel's process id (for tests and diagnostics)."""
        provisioner = self._manager.provisioner if self._manager else None
        process = getattr(provisioner, "process", None)
        return getattr(process, "pid", None)

    # ---- running code ------------------------------------------------------------------------
    async def run(self, code: str, time_limit: float) -> KernelRun:
        """Run ``code`` as one cell; the outcome carries its text output, or its error."""
        if self._client is None or self._manager is None:
            await self.start()
        client, manager = self._client, self._manager
        assert client is not None
        assert manager is not None
        started = time.monotonic()
        deadline = started + time_limit
        msg_id = client.execute(code, store_history=False, allow_stdin=False)
        cell = _Cell()
        while not cell.idle and time.monotonic() < deadline:
            await self._read(client, manager, msg_id, cell, deadline)
        recovery: Recovery = ""
        if not cell.idle:  # the time limit passed: interrupt, as the user would
            await manager.interrupt_kernel()
            recovery = "interrupted"
            grace = time.monotonic() + self.interrupt_grace
            while not cell.idle and time.monotonic() < grace:
                await self._read(client, manager, msg_id, cell, grace)
            if not cell.idle:  # deaf to SIGINT (a C loop, a handler that swallows it)
                recovery = "restarted"
                await self.fresh()
            return KernelRun(
                ExecutionOutcome(
                    "timeout",
                    output=cell.text(),
                    seconds=time.monotonic() - started,
                    time_limit=time_limit,
                ),
                recovery,
            )
        seconds = time.monotonic() - started
        if cell.ename:
            outcome = ExecutionOutcome(
                "error",
                output=cell.text(),
                ename=cell.ename,
                evalue=cell.evalue,
                traceback=cell.traceback,
                seconds=seconds,
            )
        else:
            outcome = ExecutionOutcome("ok", output=cell.text(), seconds=seconds)
        return KernelRun(outcome, recovery)

    async def evaluate(self, expression: str, timeout: float = 5.0) -> str | None:
        """The text/plain result of ``expression``, asked silently as the sidebar asks the
        kernel about its variables: an empty silent cell with a user expression (no history,
        no execution count, no output). None when the kernel is busy, slow, or the expression
        failed."""
        client = self._client
        if client is None:
            return None
        msg_id = client.execute(
            "",
            silent=True,
            store_history=False,
            allow_stdin=False,
            user_expressions={"oci": expression},
        )
        deadline = time.monotonic() + timeout
        while True:
            wait = deadline - time.monotonic()
            if wait <= 0:
                return None
            try:
                reply = await client.get_shell_msg(timeout=wait)
            except Empty:
                return None
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                break  # other replies are those of earlier runs, read from iopub already
        content = reply.get("content", {})
        if content.get("status") != "ok":
            return None
        result = content.get("user_expressions", {}).get("oci", {})
        if result.get("status") != "ok":
            return None
        text = result.get("data", {}).get("text/plain")
        return text if isinstance(text, str) else None

    async def _read(
        self,
        client: AsyncKernelClient,
        manager: AsyncKernelManager,
        msg_id: str,
        cell: _Cell,
        until: float,
    ) -> None:
        """Take one message of this cell from iopub (or notice that the kernel died)."""
        wait = max(0.01, min(POLL, until - time.monotonic()))
        try:
            message = await client.get_iopub_msg(timeout=wait)
        except Empty:
            if not await manager.is_alive():
                self.deaths += 1
                code = _exit_code(manager)
                self._disconnect()
                raise KernelDied(
                    "the kernel died while running the code"
                    + (f" (exit code {code})" if code is not None else "")
                ) from None
            return
        if message.get("parent_header", {}).get("msg_id") == msg_id:
            cell.add(message)


class _Cell:
    """What one execution showed, gathered from its iopub messages."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.ename = ""
        self.evalue = ""
        self.traceback = ""
        self.idle = False

    def add(self, message: dict[str, Any]) -> None:
        kind, content = message["header"]["msg_type"], message["content"]
        if kind == "stream":
            self.parts.append(content.get("text", ""))
        elif kind in ("execute_result", "display_data"):
            text = content.get("data", {}).get("text/plain", "")
            if text:
                self.parts.append(text if text.endswith("\n") else text + "\n")
        elif kind == "clear_output":
            self.parts.clear()
        elif kind == "error":
            self.ename = content.get("ename", "Error")
            self.evalue = content.get("evalue", "")
            self.traceback = "\n".join(content.get("traceback", []))
        elif kind == "status" and content.get("execution_state") == "idle":
            self.idle = True

    def text(self) -> str:
        return "".join(self.parts)


def _exit_code(manager: AsyncKernelManager) -> int | None:
    process = getattr(manager.provisioner, "process", None)
    code = process.poll() if process is not None and hasattr(process, "poll") else None
    return code if isinstance(code, int) else None


# ---- hidden tests ----------------------------------------------------------------------------
HiddenStatus = Literal["passed", "failed", "timeout"]


@dataclass(frozen=True)
class HiddenResult:
    status: HiddenStatus
    detail: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "passed"


async def run_hidden_tests(
    program: str,
    *,
    time_limit: float,
    workdir: Path | None = None,
    memory_limit: int | None = MEMORY_LIMIT,
) -> HiddenResult:
    """Run ``program`` in a new Python process (see :mod:`.timed_process`). Exit status 0 is
    a pass; else the detail is the error's last line."""
    source = (_MEMORY_LIMIT_SETUP.format(limit=memory_limit) if memory_limit else "") + program
    with tempfile.TemporaryDirectory(prefix="oci-eval-hidden-", dir=workdir) as folder:
        script = Path(folder) / "hidden_test.py"
        script.write_text(source, encoding="utf-8")
        run = await run_script(script, cwd=Path(folder), time_limit=time_limit)
    if run.timed_out:
        detail = f"the hidden tests did not finish within {time_limit:g} s"
        return HiddenResult("timeout", detail, run.seconds)
    if run.returncode == 0:
        return HiddenResult("passed", "", run.seconds)
    return HiddenResult("failed", run.failure()[:300], run.seconds)
