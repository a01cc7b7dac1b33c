"""Judging an answer in a separate process: the verdicts, and the process that gives them.

:func:`run_judge` runs :mod:`.judge` (a standalone program) in a new Python process
with its own session, a memory limit and a time limit, and reads back its verdicts. A part the
process did not finish (it was killed at the limit, or died) gets a verdict all the same.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from . import judge
from .judge.verdicts import FEEDBACK_LIMIT, TIMED_OUT, candidate_traceback_text
from .kernels import MEMORY_LIMIT
from .timed_process import ScriptRun, run_script

VerdictStatus = Literal["passed", "failed", "timeout"]
JUDGE_PROGRAM = Path(judge.__file__).parent
"""Run as a folder (its ``__main__.py``): ``python -I -B JUDGE_PROGRAM JOB.json``."""


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
    """Run one judging job (see :mod:`.judge`); a verdict for each of its parts."""
    names = [part["name"] for part in job["parts"]]
    with tempfile.TemporaryDirectory(prefix="oci-eval-judge-", dir=workdir) as folder:
        verdict_path = Path(folder) / "verdict.json"
        job_path = Path(folder) / "job.json"
        job_path.write_text(
            json.dumps({**job, "verdict": str(verdict_path), "memory_limit": memory_limit}),
            encoding="utf-8",
        )
        run = await run_script(
            JUDGE_PROGRAM, str(job_path), cwd=Path(folder), time_limit=time_limit
        )
        try:
            found = json.loads(verdict_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found = {}
    verdicts: dict[str, Verdict] = {}
    for name in names:
        if name in found:
            raw = found[name]
            verdicts[name] = Verdict(raw["status"], raw["detail"], raw["feedback"], run.seconds)
        elif run.timed_out:
            detail = f"the judging did not finish within {time_limit:g} s"
            verdicts[name] = Verdict("timeout", detail, TIMED_OUT, run.seconds)
        else:
            verdicts[name] = _crashed(run)
    return verdicts


def _crashed(run: ScriptRun) -> Verdict:
    """The process ended without a verdict (os._exit, a signal, a crash of the judge)."""
    text = run.stderr.strip()
    detail = run.failure()
    feedback = candidate_traceback_text(text) if text else detail
    return Verdict("failed", detail[:300], feedback[:FEEDBACK_LIMIT], run.seconds)
