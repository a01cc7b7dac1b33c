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
paper harness's.

``workers`` problems run at once, each in its own kernel; generation is serialized by the
engine, so while one worker waits for the model, another runs code.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

from ..client import ModelClient, ModelRequestError, ServerInfo, ServerUnavailable
from ..driver import KernelGone, ModelFailed, ReplyCutter, drive
from ..engine import Delta, Engine, EngineError, EngineNotReady, GenerationParams, Message
from ..loop import Budgets, Execute, Finished, Generate, RefinementLoop, Turn
from ..prompts import clip, strip_ansi
from ..types import ExecutionOutcome
from .benchmarks import DEFAULT_BENCHMARK, Benchmark, get_benchmark
from .feedback import DEFAULT_FEEDBACK, FEEDBACK_PROTOCOLS, FeedbackProtocol, tests_outcome
from .judging import Judgement
from .kernels import KernelDied, KernelSession
from .problems import Problem
from .prompting import DEFAULT_PROMPT, PromptChoice, check_prompt
from .report import (
    ANSWER,
    PLOT,
    RecordStore,
    by_problem,
    load_run,
    passed_at,
    save_run,
    summarize,
    write_reports,
)

SuccessRule = Literal["first-run", "read"]
SUCCESS_RULES: tuple[SuccessRule, ...] = get_args(SuccessRule)
DEFAULT_SUCCESS: SuccessRule = "first-run"
"""The rule of runs recorded before there was a choice."""
RECORDED_BEFORE: dict[str, Any] = {
    "benchmark": DEFAULT_BENCHMARK,
    "feedback": DEFAULT_FEEDBACK,
    "success": DEFAULT_SUCCESS,
    "prompt": DEFAULT_PROMPT,
    "first_turn": "generated",
}
"""The protocol of a run recorded before these choices existed: HumanEval, own feedback,
first-run, the product's prompt, every first turn generated (not replayed from another run:
``--first-turn-from``, :mod:`.replay`)."""


class ProtocolMismatch(ValueError):
    """``resume`` would mix two protocols in one run's records."""


@dataclass(frozen=True)
class EvalSettings:
    turns: int = 2
    """Replies per problem at most: 2 = the first answer + one execution-feedback turn."""
    success: SuccessRule = DEFAULT_SUCCESS
    """When an answer stands: at its first run without errors, or after the model has read
    that run's output (see the module's docstring)."""
    temperature: float = 0.0
    max_tokens: int = 512
    time_limit: float = 10.0
    """Seconds for each run of the model's code, and for each hidden-test run."""
    workers: int = 1
    seed: int = 0
    benchmark: str = DEFAULT_BENCHMARK
    """``humaneval``, ``mbpp`` or ``mbppplus`` (:mod:`.benchmarks`)."""
    feedback: FeedbackProtocol = DEFAULT_FEEDBACK
    """``own``: the model's own run in a kernel is the feedback; ``tests``: the hidden tests
    judge every answer and their failure is the feedback (the paper's oracle protocol)."""
    prompt: PromptChoice = DEFAULT_PROMPT
    """The first turn: ``product`` (the product's system prompt and our request) or ``paper``
    (the paper harness's user turn, word for word; :mod:`.prompting`)."""

    def protocol(self) -> dict[str, Any]:
        """What a run's records depend on besides the model (``--resume`` keeps it)."""
        return {
            "benchmark": self.benchmark,
            "feedback": self.feedback,
            "success": self.success,
            "prompt": self.prompt,
        }

    def first_turn(self, benchmark: Benchmark, problem: Problem) -> list[Message]:
        """The messages a problem starts with, under this run's ``prompt``."""
        return benchmark.messages(problem, check_prompt(self.prompt))

    def params(self) -> GenerationParams:
        top_p = 1.0 if self.temperature == 0 else 0.95
        return GenerationParams(
            max_tokens=self.max_tokens, temperature=self.temperature, top_p=top_p, seed=self.seed
        )

    def loop(self, messages: list[Message]) -> RefinementLoop:
        """One problem's loop: ``turns`` replies at most, each code reply a whole answer.

        Under ``read`` a function given again after a successful run is the next step of a
        chat loop (run in the same kernel, judged as that turn's answer), with ``turns``
        steps, so that no reply's code is left unrun by a step budget."""
        if self.success not in SUCCESS_RULES:
            raise ValueError(f"unknown success rule {self.success!r}")
        if self.feedback not in FEEDBACK_PROTOCOLS:
            raise ValueError(f"unknown feedback protocol {self.feedback!r}")
        read = self.success == "read"
        if read and self.feedback == "tests":
            raise ValueError("--success read needs --feedback own: under tests nothing is run")
        budgets = Budgets(attempts=self.turns, steps=self.turns if read else 1, replies=self.turns)
        return RefinementLoop(
            messages,
            budgets,
            mode="chat",
            read_results=read,
            # Under tests the paper's text is the feedback, word for word.
            verbatim_feedback=self.feedback == "tests",
        )


# ---- the model -------------------------------------------------------------------------------
class ModelUnavailable(RuntimeError):
    """The model cannot answer at all (not loaded, server gone): the run stops; finished
    problems are kept and ``--resume`` continues."""


class ModelFailure(RuntimeError):
    """This one request failed (e.g. the prompt outgrew the context): the problem fails."""


CUT = "cut"
"""The finish reason of a reply read only up to where its first python block closed (the
chat's way, ``cut=True``): the generation was stopped there."""


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"
    replayed: bool = False
    """Read from an earlier run's records (:mod:`.replay`), not generated now."""


class ReplyModel(Protocol):
    name: str

    async def reply(
        self, messages: Sequence[Message], params: GenerationParams, request_id: str
    ) -> Reply: ...


class EngineModel:
    """An engine in this process (llama.cpp, vLLM, a remote OpenAI-compatible server)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.name = engine.status.model

    @property
    def context_length(self) -> int:
        return self.engine.context_length

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts with the engine's tokenizer (what the chat's prompt budget uses)."""
        return [self.engine.count_tokens(text) for text in texts]

    async def reply(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        request_id: str,
        *,
        cut: bool = False,
    ) -> Reply:
        """The whole reply; with ``cut``, only up to where its first python block closes, and
        the generation stops there, as the chat reads a reply (:class:`ReplyCutter`)."""
        cutter = ReplyCutter(cut)
        try:
            stream = self.engine.stream_chat(messages, params, request_id)
            async with contextlib.aclosing(stream):
                async for event in stream:
                    if isinstance(event, Delta):
                        cutter.feed(event.text)
                        if cutter.done:
                            break
                    else:
                        return Reply(
                            cutter.text,
                            event.prompt_tokens,
                            event.completion_tokens,
                            event.reason,
                        )
        except EngineNotReady as exc:
            raise ModelUnavailable(str(exc)) from exc
        except EngineError as exc:
            raise ModelFailure(str(exc)) from exc
        if cutter.done:  # stopped where the block closed: the engine sent no finish event
            tokens = self.engine.count_tokens(cutter.text) if cutter.text else 0
            return Reply(cutter.text, None, tokens, CUT)
        raise ModelFailure("the engine's stream ended without a finish event")


class EndpointModel:
    """A running Jupyter server's model, through its OpenAI-compatible endpoint.

    :class:`~oci_jupyter.client.ModelClient` is synchronous: each request runs in a worker
    thread, one at a time (the server generates one at a time anyway).
    """

    def __init__(self, server: ServerInfo, *, timeout: float = 600.0) -> None:
        self.server = server
        self.client = ModelClient(server, timeout=timeout)
        self.name = "?"
        self.context_length = 4096
        """The served model's window (from :meth:`check`); 4096 when the server does not say,
        as the ``%%oci`` magic assumes."""
        self._lock = threading.Lock()

    def check(self) -> dict[str, Any]:
        """The server's status; raises ServerUnavailable / ModelRequestError (both clear)."""
        status = self.client.status()
        self.name = str(status.get("model") or "?")
        if isinstance(status.get("context_length"), int):
            self.context_length = int(status["context_length"])
        return status

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts with the served model's tokenizer (``/oci/tokenize``)."""
        with self._lock:
            try:
                return self.client.count_tokens(list(texts))
            except ServerUnavailable as exc:
                raise ModelUnavailable(str(exc)) from exc
            except ModelRequestError as exc:
                raise ModelFailure(str(exc)) from exc

    async def reply(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        request_id: str,
        *,
        cut: bool = False,
    ) -> Reply:
        """See :meth:`EngineModel.reply`; a cut reply closes the stream where its block
        closes (the server stops generating)."""
        return await asyncio.to_thread(self._reply, list(messages), params, cut)

    def _reply(self, messages: list[Message], params: GenerationParams, cut: bool = False) -> Reply:
        cutter = ReplyCutter(cut)
        with self._lock:
            try:
                stream = self.client.stream_chat(messages, params)
                try:
                    for piece in stream:
                        cutter.feed(piece)
                        if cutter.done:
                            break
                finally:
                    close = getattr(stream, "close", None)
                    if close is not None:
                        close()
                text = cutter.text
                tokens = self.client.count_tokens([text])[0] if text else 0
            except ServerUnavailable as exc:
                raise ModelUnavailable(str(exc)) from exc
            except ModelRequestError as exc:
                if exc.status in (401, 403, 404, 503):
                    raise ModelUnavailable(str(exc)) from exc
                raise ModelFailure(str(exc)) from exc
        return Reply(text, None, tokens, CUT if cutter.done else "stop")

    def close(self) -> None:
        self.client.close()


# ---- one problem -----------------------------------------------------------------------------
@dataclass
class _TurnIO:
    """What the harness saw of one turn, beside what the loop keeps."""

    reply: Reply | None = None
    model_error: str | None = None
    recovery: str = ""
    kernel_error: str | None = None


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
    io: dict[int, _TurnIO] = {}
    judged: dict[str, Judgement] = {}

    async def generate(action: Generate) -> str:
        turn_io = io.setdefault(action.turn, _TurnIO())
        request_id = f"oci-eval {problem.task_id} turn {action.turn}"
        try:
            reply = await model.reply(action.messages, action.params(params), request_id)
        except ModelFailure as exc:
            turn_io.model_error = str(exc)
            raise ModelFailed(str(exc)) from exc
        turn_io.reply = reply
        return reply.text

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
        try:
            run = await kernel.run(action.code, settings.time_limit)
        except KernelDied as exc:
            turn_io.recovery, turn_io.kernel_error = "died", str(exc)
            raise KernelGone(f"{exc}: the problem counts as failed") from exc
        turn_io.recovery = run.recovery
        return run.outcome

    result = await drive(loop, generate, execute)
    loop_status = "kernel_died" if any(t.kernel_error for t in io.values()) else result.status

    records: list[dict[str, Any]] = []
    for turn in result.turns:
        turn_io = io.get(turn.number, _TurnIO())
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
        outcome = turn.outcome
        answer = turn_io.reply
        records.append(
            {
                "task_id": problem.task_id,
                "turn": turn.number,
                "final": turn.number == len(result.turns),
                "loop_status": loop_status,
                "loop_message": result.message,
                "turns_taken": len(result.turns),
                "reply": turn.reply,
                "code": turn.code,
                "step": turn.step,
                "attempt": turn.attempt,
                "skipped": turn.skipped,
                "outcome": (
                    {"status": outcome.status, "ename": outcome.ename, "evalue": outcome.evalue}
                    if outcome is not None
                    else None
                ),
                "output": clip(strip_ansi(outcome.output)) if outcome is not None else "",
                "feedback": turn.feedback,
                "recovery": turn_io.recovery,
                "kernel_error": turn_io.kernel_error,
                "model_error": turn_io.model_error,
                "passed": (
                    bool(records[standing.number - 1]["passed"])
                    if standing is not None
                    else hidden["status"] == "passed"
                ),
                "hidden": hidden,
                "scores": scores,
                "tokens": {
                    "prompt": answer.prompt_tokens if answer else None,
                    "completion": answer.completion_tokens if answer else None,
                },
                "finish_reason": answer.finish_reason if answer else None,
                # Only a replayed reply says so: the records of other runs stay as they were.
                **({"replayed": True} if answer is not None and answer.replayed else {}),
                "seconds": {
                    "generate": round(turn.generate_seconds, 3),
                    "execute": round(turn.execute_seconds, 3) if outcome is not None else 0.0,
                    "hidden": round(hidden_seconds, 3),
                },
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
    sessions: list[dict[str, Any]] = list(run.get("sessions", []))
    session: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": 0.0,
        "problems": 0,
    }
    sessions.append(session)
    run.update(
        config={**(config or {}), **protocol},
        sessions=sessions,
        selected=len(problems),
    )
    save_run(out, run)
    clock = time.monotonic()

    bar = _progress_bar(len(problems), len(done), progress)
    bar.set_postfix_str(_postfix(state, settings.turns))
    queue: asyncio.Queue[Problem] = asyncio.Queue()
    for problem in todo:
        queue.put_nowait(problem)
    scratch = Path(tempfile.mkdtemp(prefix="oci-eval-"))
    factory = session_factory or (lambda folder: KernelSession(workdir=folder))

    def finished(records: list[dict[str, Any]]) -> None:
        store.append(records)
        state.results[records[0]["task_id"]] = records
        session["problems"] = int(session["problems"]) + 1
        session["seconds"] = round(time.monotonic() - clock, 1)
        save_run(out, run)
        write_reports(out, _summary(state, settings, run, len(problems)), with_plot=False)
        bar.update(1)
        bar.set_postfix_str(_postfix(state, settings.turns))

    async def worker(index: int) -> None:
        folder = scratch / f"worker-{index}"
        kernel = factory(folder)
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

    try:
        async with asyncio.TaskGroup() as group:
            for index in range(min(settings.workers, len(todo))):
                group.create_task(worker(index))
    except BaseExceptionGroup as failures:
        raise _first(failures) from None
    finally:
        bar.close()
        session["seconds"] = round(time.monotonic() - clock, 1)
        save_run(out, run)
        summary = _summary(state, settings, run, len(problems))
        with contextlib.suppress(Exception):  # a report must not hide the run's own error
            write_reports(out, summary, with_plot=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return summary


def _summary(
    state: RunState, settings: EvalSettings, run: dict[str, Any], selected: int
) -> dict[str, Any]:
    records = [r for turns in state.results.values() for r in turns]
    wall = sum(float(s.get("seconds", 0.0)) for s in run.get("sessions", []))
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


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    """The error that ended a run (a KeyboardInterrupt wins over the rest)."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        error = stack.pop()
        if isinstance(error, BaseExceptionGroup):
            stack.extend(reversed(error.exceptions))
        else:
            leaves.append(error)
    for error in leaves:
        if isinstance(error, KeyboardInterrupt):
            return error
    return leaves[0]


def _postfix(state: RunState, turns: int) -> str:
    done = len(state.results)
    if not done:
        return ""
    counts = state.pass_counts(turns)
    return " ".join(f"t{k}={100 * c / done:.1f}%" for k, c in enumerate(counts, start=1))


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="problem",
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
        desc="oci-eval",
    )


__all__ = [
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
