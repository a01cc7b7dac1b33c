"""The harness: one :class:`~oci_jupyter.loop.RefinementLoop` per problem, driven with real I/O.

For each problem the loop is started with the problem's messages (system prompt + task). Its
``Generate`` actions go to the model; its ``Execute`` actions run the model's code in the
worker's fresh Jupyter kernel, and the outcome of that run (the model's own code, its own
tests) goes back into the loop, which turns it into the next turn's feedback. When the loop
has finished, every turn's code is judged by the problem's hidden tests in a separate process;
nothing of those tests or their result ever reaches the model. The loop is driven by
:func:`oci_jupyter.driver.drive`, as the chat sidebar's is.

The success rule (``--success``) says when an answer stands:

- ``first-run`` (the paper's protocol, the default): at the first run of the model's own code
  without errors; the loop stops there (``read_results=False``).
- ``read`` (the product's loop): the model reads the output of that run, too, and either answers
  in words, and then the code that ran stands, or gives the function again, which is run and
  judged as that turn's answer (``read_results=True``).

The feedback protocol (``--feedback``, :mod:`.feedback`) says what the next turn is told:

- ``own`` (the default): the model's own run in the kernel, as above.
- ``tests`` (the paper's, an oracle): the ``Execute`` step judges the code with the hidden
  tests instead of running it, and hands the loop a passed/failed outcome whose text (the
  paper's) the loop sends word for word; a passing answer ends the problem.

The benchmark (:mod:`.benchmarks`: HumanEval, MBPP, MBPP+) gives the first turn and judges.
The first turn is the product's prompt or, with ``--prompt paper`` (:mod:`.prompting`), the
paper harness's. The settings and the loop they give are :mod:`.settings`'s; the model is
:mod:`.models`'s.

``workers`` problems run at once, each in its own kernel; generation is serialized by the
engine, so while one worker waits for the model, another runs code.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..driver import drive
from ..loop import Execute, Finished, Turn
from ..prompts import clip, strip_ansi
from ..types import ExecutionOutcome
from .benchmarks import Benchmark, get_benchmark
from .feedback import tests_outcome
from .judging import Judgement
from .kernels import KernelSession
from .models import (
    CUT,
    EndpointModel,
    EngineModel,
    ModelFailure,
    ModelUnavailable,
    Reply,
    ReplyModel,
)
from .problems import Problem
from .prompting import check_prompt
from .report import ANSWER, PLOT, by_problem, passed_at, summarize, write_reports
from .run_folder import RecordStore, load_run, wall_seconds
from .runs import RunBook, progress_bar, run_workers
from .settings import (
    DEFAULT_SUCCESS,
    RECORDED_BEFORE,
    SUCCESS_RULES,
    EvalSettings,
    ProtocolMismatch,
    SuccessRule,
)
from .turns import TurnIO, generator, run_in_kernel, turn_fields


# ---- one problem -----------------------------------------------------------------------------
async def solve(
    problem: Problem,
    model: ReplyModel,
    kernel: KernelSession,
    settings: EvalSettings,
    *,
    hidden_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """Drive the refinement loop for one problem; return one record per turn.

    Under ``--feedback own`` each answer runs in ``kernel`` and that run is the feedback;
    under ``tests`` each answer is judged by the hidden tests at once (the kernel is not used)
    and a failure's paper text is the feedback. Either way every turn's code is judged after
    the loop (an answer judged during it is not judged twice).

    :class:`ModelUnavailable` ends the whole run (it propagates); a :class:`ModelFailure` or
    a dead kernel fails this problem."""
    started = time.monotonic()
    benchmark = get_benchmark(settings.benchmark)
    loop = settings.loop(settings.first_turn(benchmark, problem))
    params = settings.params()
    io: dict[int, TurnIO] = {}
    judged: dict[str, Judgement] = {}
    generate = generator(model.reply, params, io, f"oci-eval {problem.task_id}")

    async def execute(action: Execute) -> ExecutionOutcome:
        turn_io = io[action.turn]
        if settings.feedback == "tests":
            judgement = await benchmark.judge(
                problem,
                action.code,
                time_limit=settings.time_limit,
                workdir=hidden_dir,
                explain=True,
            )
            judged[action.code] = judgement
            return tests_outcome(judgement.main, settings.time_limit)
        run = await run_in_kernel(kernel, action.code, settings.time_limit, turn_io, "problem")
        return run.outcome

    result = await drive(loop, generate, execute)
    loop_status = "kernel_died" if any(t.kernel_error for t in io.values()) else result.status

    records: list[dict[str, Any]] = []
    for turn in result.turns:
        turn_io = io.get(turn.number, TurnIO())
        hidden_seconds = 0.0
        standing = _standing_turn(result, turn)
        scores: dict[str, dict[str, Any]] | None = None
        if turn_io.kernel_error:
            hidden = {"status": "kernel_died", "detail": turn_io.kernel_error}
        elif turn_io.model_error:
            hidden = {"status": "model_error", "detail": turn_io.model_error}
        elif standing is not None:
            # Words after a run that succeeded: the code that ran is the answer.
            earlier = records[standing.number - 1]
            hidden = {
                "status": ANSWER,
                "detail": f"answered in words; turn {standing.number}'s code stands "
                f"({earlier['hidden']['status']})",
            }
            scores = {
                label: {**score, "status": ANSWER} for label, score in earlier["scores"].items()
            }
        elif turn.code is None:
            hidden = {"status": "no_code", "detail": "the reply has no ```python block"}
        else:
            judgement = judged.get(turn.code) or await benchmark.judge(
                problem, turn.code, time_limit=settings.time_limit, workdir=hidden_dir
            )
            judged[turn.code] = judgement
            hidden = {"status": judgement.main.status, "detail": judgement.main.detail}
            scores = {label: v.record() for label, v in judgement.verdicts.items()}
            hidden_seconds = judgement.main.seconds
        if scores is None:  # no code judged: every score fails with the same reason
            scores = {label: {"passed": False, **hidden} for label in benchmark.scores}
        answer = turn_io.reply
        fields = turn_fields(turn, turn_io, lambda text: clip(strip_ansi(text)))
        fields["seconds"]["hidden"] = round(hidden_seconds, 3)
        records.append(
            {
                "task_id": problem.task_id,
                "turn": turn.number,
                "final": turn.number == len(result.turns),
                "loop_status": loop_status,
                "loop_message": result.message,
                "turns_taken": len(result.turns),
                **fields,
                "passed": (
                    bool(records[standing.number - 1]["passed"])
                    if standing is not None
                    else hidden["status"] == "passed"
                ),
                "hidden": hidden,
                "scores": scores,
                # Only a replayed reply says so: the records of other runs stay as they were.
                **({"replayed": True} if answer is not None and answer.replayed else {}),
            }
        )
    records[-1]["problem_seconds"] = round(time.monotonic() - started, 3)
    return records


def _standing_turn(result: Finished, turn: Turn) -> Turn | None:
    """For the loop's last reply, if it answered in words after a run without errors: the
    turn whose code is the answer (the last one with code). Otherwise None."""
    if turn.code is not None or result.status != "success" or turn is not result.turns[-1]:
        return None
    return next((t for t in reversed(result.turns[:-1]) if t.code is not None), None)


# ---- a run -----------------------------------------------------------------------------------
@dataclass
class RunState:
    """Where a run stands; what the progress bar shows."""

    total: int
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def pass_counts(self, turns: int) -> list[int]:
        return [sum(passed_at(t, k) for t in self.results.values()) for k in range(1, turns + 1)]


async def run_evaluation(
    problems: Sequence[Problem],
    model: ReplyModel,
    settings: EvalSettings,
    out: Path,
    *,
    config: dict[str, Any] | None = None,
    resume: bool = False,
    progress: bool = True,
    session_factory: Callable[[Path], KernelSession] | None = None,
) -> dict[str, Any]:
    """Run (or continue) an evaluation into ``out``; returns the summary."""
    check_prompt(settings.prompt)  # before anything is recorded under an unknown prompt
    store = RecordStore(out)
    selected = {p.task_id for p in problems}
    done = store.finished_ids() & selected if resume else set()
    todo = [p for p in problems if p.task_id not in done]
    state = RunState(total=len(problems))
    state.results = {t: r for t, r in by_problem(store.load()).items() if t in done}

    run = load_run(out) if resume else {}
    protocol = settings.protocol()
    if run:  # a recorded run; one from before a choice was recorded had its default
        recorded = {**RECORDED_BEFORE, **run.get("config", {})}
        for key, value in protocol.items():
            if recorded[key] != value:
                raise ProtocolMismatch(
                    f"{out} was run with --{key} {recorded[key]}, not {value}: "
                    f"resuming would mix two protocols ({key})"
                )
    book = RunBook.open(
        out,
        run,
        config={**(config or {}), **protocol},
        selected=len(problems),
        unit="problems",
    )
    bar = progress_bar(len(problems), len(done), progress, unit="problem", desc="oci-eval")
    bar.set_postfix_str(_postfix(state, settings.turns))
    scratch = Path(tempfile.mkdtemp(prefix="oci-eval-"))
    factory = session_factory or (lambda folder: KernelSession(workdir=folder))

    def summary() -> dict[str, Any]:
        return _summary(state, settings, book.run, len(problems))

    def finished(records: list[dict[str, Any]]) -> None:
        store.append(records)
        state.results[records[0]["task_id"]] = records
        book.count_one()
        write_reports(out, summary(), with_plot=False)
        bar.update(1)
        bar.set_postfix_str(_postfix(state, settings.turns))

    async def worker(index: int, queue: asyncio.Queue[Problem]) -> None:
        kernel = factory(scratch / f"worker-{index}")
        try:
            first = True
            while not queue.empty():
                problem = queue.get_nowait()
                if settings.feedback == "tests":
                    pass  # the hidden tests judge each answer: no kernel runs anything
                elif first:
                    await kernel.start()
                    first = False
                else:
                    await kernel.fresh()  # a fresh kernel for every problem
                records = await solve(problem, model, kernel, settings, hidden_dir=scratch)
                finished(records)
        finally:
            await kernel.shutdown()

    def write_final(final: dict[str, Any]) -> None:
        write_reports(out, final, with_plot=True)

    return await run_workers(
        todo, settings.workers, worker, book, bar, scratch, summary, write_final, "oci-eval"
    )


def _summary(
    state: RunState, settings: EvalSettings, run: dict[str, Any], selected: int
) -> dict[str, Any]:
    records = [r for turns in state.results.values() for r in turns]
    wall = wall_seconds(run)
    config = dict(run.get("config", {}))
    if len(run.get("sessions", [])) > 1:
        config["sessions"] = len(run["sessions"])
    return summarize(
        records,
        settings.turns,
        config=config,
        wall_seconds=wall,
        selected=selected,
        success=settings.success,
        benchmark=get_benchmark(settings.benchmark),
        feedback=settings.feedback,
        prompt=settings.prompt,
    )


def _postfix(state: RunState, turns: int) -> str:
    done = len(state.results)
    if not done:
        return ""
    counts = state.pass_counts(turns)
    return " ".join(f"t{k}={100 * c / done:.1f}%" for k, c in enumerate(counts, start=1))


__all__ = [
    "CUT",
    "DEFAULT_SUCCESS",
    "PLOT",
    "RECORDED_BEFORE",
    "SUCCESS_RULES",
    "Benchmark",
    "EndpointModel",
    "EngineModel",
    "EvalSettings",
    "ModelFailure",
    "ModelUnavailable",
    "ProtocolMismatch",
    "Reply",
    "ReplyModel",
    "SuccessRule",
    "run_evaluation",
    "solve",
]
