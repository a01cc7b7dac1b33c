"""Judging an answer in a separate process: the verdicts, and the process that gives them.

:func:`run_judge` runs :mod:`.judge_process` (a standalone script) in a new Python process
with its own session, a memory limit and a time limit, and reads back its verdicts. A part the
process did not finish (it was killed at the limit, or died) gets a verdict all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from . import judge_process
from .kernels import MEMORY_LIMIT, _kill_group

VerdictStatus = Literal["passed", "failed", "timeout"]
JUDGE_SCRIPT = Path(judge_process.__file__)


@dataclass(frozen=True)
class Verdict:
    """One score's verdict on one answer."""

    status: VerdictStatus
    detail: str = ""
    """One line for the records: the error, the wrong input, the limit."""
    feedback: str = ""
    """What the paper's harness would tell the model (``--feedback tests``); "" if passed."""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def record(self) -> dict[str, Any]:
        return {"passed": self.passed, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class Judgement:
    """Every score's verdict on one answer; ``primary`` names the benchmark's own."""

    verdicts: dict[str, Verdict]
    primary: str

    @property
    def main(self) -> Verdict:
        return self.verdicts[self.primary]


async def run_judge(
    job: dict[str, Any],
    *,
    time_limit: float,
    workdir: Path | None = None,
    memory_limit: int | None = MEMORY_LIMIT,
) -> dict[str, Verdict]:
    """Run one judging job (see :mod:`.judge_process`); a verdict for each of its parts."""
    names = [part["name"] for part in job["parts"]]
    with tempfile.TemporaryDirectory(prefix="oci-eval-judge-", dir=workdir) as folder:
        verdict_path = Path(folder) / "verdict.json"
        job_path = Path(folder) / "job.json"
        job_path.write_text(
            json.dumps({**job, "verdict": str(verdict_path), "memory_limit": memory_limit}),
            encoding="utf-8",
        )
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-B",
            str(JUDGE_SCRIPT),
            str(job_path),
            cwd=folder,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        timed_out = False
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), time_limit)
        except TimeoutError:
            timed_out, stderr = True, b""
            _kill_group(process.pid)
            await process.wait()
        finally:
            if process.returncode is None:
                _kill_group(process.pid)
                with contextlib.suppress(ProcessLookupError):
                    await process.wait()
        seconds = time.monotonic() - started
        try:
            found = json.loads(verdict_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found = {}
    verdicts: dict[str, Verdict] = {}
    for name in names:
        if name in found:
            raw = found[name]
            verdicts[name] = Verdict(raw["status"], raw["detail"], raw["feedback"], seconds)
        elif timed_out:
            detail = f"the judging did not finish within {time_limit:g} s"
            verdicts[name] = Verdict("timeout", detail, judge_process.TIMED_OUT, seconds)
        else:
            verdicts[name] = _crashed(process.returncode, stderr, seconds)
    return verdicts


def _crashed(returncode: int | None, stderr: bytes, seconds: float) -> Verdict:
    """The process ended without a verdict (os._exit, a signal, a crash of the judge)."""
    text = stderr.decode("utf-8", "replace").strip()
    lines = [line for line in text.splitlines() if line.strip()]
    if returncode is not None and returncode < 0:
        detail = f"killed by signal {-returncode}"
    else:
        detail = lines[-1].strip() if lines else f"exit status {returncode}"
    feedback = judge_process.candidate_traceback_text(text) if text else detail
    return Verdict("failed", detail[:300], feedback[: judge_process.FEEDBACK_LIMIT], seconds)
