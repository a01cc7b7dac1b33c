"""DABench through the chat's loop: each question is a chat request in a notebook of its own.

What the sidebar does for a notebook with no cells yet, whose folder holds the question's CSV
file, the harness does here (:func:`solve_question`):

1. **The notebook.** A fresh Jupyter kernel (jupyter_client, a new process per question) whose
   working folder holds a copy of the question's CSV file and nothing else, as a user's
   notebook folder would. Its memory limit is the other benchmarks' (4 GiB).
2. **The context.** The kernel's variables, asked silently as the sidebar asks them (an empty
   silent cell with a user expression, described by :mod:`oci_jupyter.kernel_context`): a
   fresh kernel has none. No cells.
3. **The prompt.** :func:`oci_jupyter.prompts.build_messages` with the product's system
   prompt, the request as the user's words (:func:`.dabench.request_text`), the chat's
   request hint, the model's own window and tokenizer, and the reply room the server gives
   (``c.OCI.default_max_tokens``, at most half the window), exactly as
   :class:`oci_jupyter.chat.session.ChatSession` builds a request's prompt.
4. **The loop.** :class:`oci_jupyter.loop.RefinementLoop` in mode ``chat`` with the server's
   default budgets (the ``ask`` message's and ``c.OCI.*`` defaults: 3 attempts per cell,
   4 steps, 8 replies) and ``read_results`` (``c.OCI.read_results``: on), driven by
   :func:`oci_jupyter.driver.drive`. Each reply is read up to where its first python block
   closes (the chat's :class:`~oci_jupyter.driver.ReplyCutter`); its code runs in the kernel
   with the sidebar's default time limit (60 s); a run that prints nothing has the values it
   assigned looked up silently in the kernel (as the browser does), and every result goes
   back to the model.
5. **The answer** is the loop's final words (:attr:`~oci_jupyter.loop.Finished.answer`),
   scored as they are by the benchmark's rules (:mod:`.dabench_scoring`): protocol
   ``format-asked``. Protocol ``rewrite`` adds one more reply by the same model, asked to
   write its final response again in the format (the published protocol has a second model,
   GPT-3.5, do that); both scores are recorded.

``workers`` questions run at once, each in its own kernel; the model generates one reply at a
time. A question's record holds every reply, every run's code and output, the steps, the
replies, the seconds, the parsed answers and the verdict.
"""

from __future__ import annotations

import ast
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

from ..driver import KernelGone, ModelFailed, drive
from ..engine import GenerationParams, Message
from ..loop import Budgets, Execute, Finished, Generate, RefinementLoop
from ..prompts import (
    REQUEST_HINT,
    SYSTEM_PROMPT,
    NotebookContext,
    PromptLimits,
    PromptTooLong,
    VariableInfo,
    build_messages,
    strip_ansi,
)
from ..prompts.files import file_previews
from ..prompts.values import assigned_names
from ..types import ExecutionOutcome
from .dabench import Question, request_text
from .dabench_report import PROTOCOL_TEXT, PUBLISHED_PROTOCOL, write_reports
from .dabench_scoring import Score, score
from .kernels import KernelDied, KernelSession
from .report import RecordStore, load_run, save_run
from .runner import ModelFailure, Reply, _first

DABenchProtocol = Literal["format-asked", "rewrite"]
PROTOCOLS: tuple[DABenchProtocol, ...] = get_args(DABenchProtocol)
DEFAULT_PROTOCOL: DABenchProtocol = "format-asked"
REWRITE_REQUEST = """\
Write your final answer again in exactly the required format and nothing else: one \
@answer_name[value] for each answer name of the format, in its order, each value as the \
format asks.

The required format: {format}"""
"""The user turn of protocol ``rewrite``, after the request and the final response."""
OUTPUT_LIMIT = 4000
"""Characters of a run's output the browser reports (src/notebook.ts ``OUTPUT_LIMIT``), cut
to its head and tail as src/context.ts ``cut`` does."""
VARIABLES_TIMEOUT = 2.0
"""Seconds the kernel has to describe its variables (src/context.ts ``VARIABLES_TIMEOUT_MS``)."""
VARIABLES_EXPRESSION = (
    "__import__('json').dumps([__import__('dataclasses').asdict(v) for v in "
    "__import__('oci_jupyter.kernel_context', fromlist=['describe_variables'])"
    ".describe_variables(globals())])"
)
"""The kernel's variables as JSON (what the ``%%oci`` magic reads of its own namespace)."""


def values_expression(names: Sequence[str]) -> str:
    """The kernel expression for the short reprs of ``names`` (identifiers only)."""
    safe = [name for name in names if name.isidentifier()]
    return (
        "__import__('json').dumps(__import__('oci_jupyter.prompts.values', "
        f"fromlist=['lookup_values']).lookup_values(globals(), {json.dumps(safe)}))"
    )


# ---- the settings -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ProductDefaults:
    """What a request from the sidebar gets when the user changed no setting."""

    budgets: Budgets
    read_results: bool
    reply_tokens: int
    time_limit: float


def product_defaults() -> ProductDefaults:
    """The server's defaults (``c.OCI.*``) and the chat ``ask``'s, read from the product."""
    from ..chat.protocol import Ask, LoopDefaults
    from ..config import OCI

    oci = OCI()
    defaults = LoopDefaults(**oci.loop_defaults())
    ask = Ask(type="ask", id="dabench", prompt="?")
    return ProductDefaults(
        budgets=ask.budgets(defaults),
        read_results=defaults.read_results,
        reply_tokens=int(oci.default_max_tokens),
        time_limit=float(ask.time_limit),
    )


@dataclass(frozen=True)
class DABenchSettings:
    protocol: DABenchProtocol = DEFAULT_PROTOCOL
    temperature: float = 0.0
    """Greedy, as the other ``oci-eval`` benchmarks (the sidebar samples at 0.2)."""
    max_tokens: int = 1024
    """Per reply, at most half the model's window (the chat's rule)."""
    time_limit: float = 60.0
    """Seconds for each run of the model's code."""
    budgets: Budgets = field(default_factory=Budgets)
    read_results: bool = True
    workers: int = 1
    seed: int = 0

    @classmethod
    def product(cls, **overrides: Any) -> DABenchSettings:
        """The product's defaults (:func:`product_defaults`), with ``overrides``."""
        defaults = product_defaults()
        base: dict[str, Any] = {
            "budgets": defaults.budgets,
            "read_results": defaults.read_results,
            "max_tokens": defaults.reply_tokens,
            "time_limit": defaults.time_limit,
        }
        return cls(**{**base, **{k: v for k, v in overrides.items() if v is not None}})

    def params(self, reply_tokens: int) -> GenerationParams:
        top_p = 1.0 if self.temperature == 0 else 0.95
        return GenerationParams(
            max_tokens=reply_tokens, temperature=self.temperature, top_p=top_p, seed=self.seed
        )

    def describe(self) -> dict[str, Any]:
        """What ``run.json`` records (and ``--resume`` keeps)."""
        return {
            "protocol": self.protocol,
            "protocol_text": PROTOCOL_TEXT[self.protocol],
            "mode": "chat",
            "budgets": {
                "attempts": self.budgets.attempts,
                "steps": self.budgets.steps,
                "replies": self.budgets.replies,
            },
            "read_results": self.read_results,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "time_limit": self.time_limit,
            "seed": self.seed,
            "workers": self.workers,
        }


class ChatModel(Protocol):
    """What the harness needs of the model: the chat's way of reading replies (``cut``), and
    its window and tokenizer for the prompt budget (:class:`~.runner.EngineModel`,
    :class:`~.runner.EndpointModel`)."""

    name: str
    context_length: int

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    async def reply(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        request_id: str,
        *,
        cut: bool = False,
    ) -> Reply: ...


# ---- one question ------------------------------------------------------------------------------
def chat_messages(
    request: str,
    variables: Sequence[VariableInfo],
    model: ChatModel,
    reply_tokens: int,
    folder: Path | None = None,
) -> tuple[list[Message], int]:
    """The first prompt of a chat request in a notebook with no cells (ChatSession._prompt)
    whose folder is ``folder`` (the data files the request names there are previewed, as the
    chat previews them), and the reply room it keeps."""
    window = model.context_length
    room = min(reply_tokens, window // 2)
    messages = build_messages(
        request,
        NotebookContext(language="python", cells=[], variables=list(variables)),
        window=window,
        count=lambda texts: model.count_tokens(texts),
        history=[],
        limits=PromptLimits(reply_tokens=room),
        hint=REQUEST_HINT,
        files=file_previews(request, folder),
    )
    return messages, room


async def kernel_variables(kernel: KernelSession) -> list[VariableInfo]:
    """The kernel's variables, asked silently (none when the kernel cannot tell)."""
    found = _json_result(await kernel.evaluate(VARIABLES_EXPRESSION, VARIABLES_TIMEOUT))
    if not isinstance(found, list):
        return []
    return [
        VariableInfo(str(v.get("name", "")), str(v.get("type", "")), str(v.get("summary", "")))
        for v in found
        if isinstance(v, dict) and v.get("name")
    ]


async def kernel_values(kernel: KernelSession, names: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``(name, short repr)`` of those of ``names`` the kernel has, asked silently."""
    if not names:
        return ()
    found = _json_result(await kernel.evaluate(values_expression(names), VARIABLES_TIMEOUT))
    if not isinstance(found, list):
        return ()
    return tuple(
        (str(pair[0]), str(pair[1])) for pair in found if isinstance(pair, list) and len(pair) == 2
    )


def _json_result(text: str | None) -> Any:
    """A user expression's text/plain (the repr of a JSON string) as the JSON's value."""
    if not text:
        return None
    try:
        return json.loads(ast.literal_eval(text))
    except (ValueError, SyntaxError, TypeError):
        return None


def browser_cut(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """A run's output as the browser reports it: head and tail with a marker past ``limit``."""
    if len(text) <= limit:
        return text
    keep = (limit - 40) // 2
    return f"{text[:keep]}\n... [{len(text) - 2 * keep} characters omitted] ...\n{text[-keep:]}"


@dataclass
class _TurnIO:
    reply: Reply | None = None
    model_error: str | None = None
    recovery: str = ""
    kernel_error: str | None = None
    inspected: list[str] = field(default_factory=list)


def prepare_folder(question: Question, folder: Path) -> Path:
    """A notebook folder holding a copy of the question's CSV file and nothing else."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    target = folder / question.file_name
    shutil.copyfile(question.csv, target)
    return target


async def solve_question(
    question: Question,
    model: ChatModel,
    settings: DABenchSettings,
    folder: Path,
    *,
    log_path: Path | None = None,
) -> dict[str, Any]:
    """Ask ``question`` as a chat request in a fresh kernel whose working folder is
    ``folder``; its record. :class:`~.runner.ModelUnavailable` ends the run (it propagates);
    a failed reply, a prompt too long or a dead kernel fails this question."""
    started = time.monotonic()
    prepare_folder(question, folder)
    kernel = KernelSession(workdir=folder, log_path=log_path)
    request = request_text(question)
    io: dict[int, _TurnIO] = {}
    prompt_error: str | None = None
    result: Finished | None = None
    messages: list[Message] = []
    variables: list[VariableInfo] = []
    room = settings.max_tokens
    kernel_start = 0.0
    try:
        await kernel.start()
        kernel_start = time.monotonic() - started
        variables = await kernel_variables(kernel)
        try:
            messages, room = await asyncio.to_thread(
                chat_messages, request, variables, model, settings.max_tokens, folder
            )
        except PromptTooLong as exc:
            prompt_error = str(exc)
        if prompt_error is None:
            loop = RefinementLoop(
                messages,
                budgets=settings.budgets,
                mode="chat",
                read_results=settings.read_results,
            )
            params = settings.params(room)

            async def generate(action: Generate) -> str:
                turn_io = io.setdefault(action.turn, _TurnIO())
                request_id = f"oci-eval dabench {question.task_id} turn {action.turn}"
                try:
                    reply = await model.reply(
                        action.messages, action.params(params), request_id, cut=True
                    )
                except ModelFailure as exc:
                    turn_io.model_error = str(exc)
                    raise ModelFailed(str(exc)) from exc
                turn_io.reply = reply
                return reply.text

            async def execute(action: Execute) -> ExecutionOutcome:
                turn_io = io[action.turn]
                try:
                    run = await kernel.run(action.code, settings.time_limit)
                except KernelDied as exc:
                    turn_io.recovery, turn_io.kernel_error = "died", str(exc)
                    raise KernelGone(f"{exc}: the question counts as failed") from exc
                turn_io.recovery = run.recovery
                outcome = replace(run.outcome, output=browser_cut(run.outcome.output))
                if outcome.ok and not outcome.output.strip():
                    # Nothing printed: what the code computed is the result to read.
                    names = assigned_names(action.code)
                    turn_io.inspected = names
                    values = await kernel_values(kernel, names)
                    if values:
                        outcome = replace(outcome, values=values)
                return outcome

            result = await drive(loop, generate, execute)
    finally:
        await kernel.shutdown()
        shutil.rmtree(folder, ignore_errors=True)

    finished_turns = result.turns if result is not None else []
    turns = [_turn_record(turn, io.get(turn.number, _TurnIO())) for turn in finished_turns]
    final_words = result.answer if result is not None else ""
    words_score = score(final_words, question.labels)
    record: dict[str, Any] = {
        "task_id": question.task_id,
        "id": question.id,
        "final": True,
        "level": question.level,
        "concepts": list(question.concepts),
        "file_name": question.file_name,
        "protocol": settings.protocol,
        "request": request,
        "prompt": messages[-1]["content"] if messages else "",
        "variables": [v.line() for v in variables],
        "turns": turns,
        "loop": _loop_record(result, prompt_error),
        "final_words": final_words,
        "labels": question.expected,
        "final_words_score": words_score.record(),
    }
    scored: Score = words_score
    if settings.protocol == "rewrite" and result is not None:
        rewrite = await _rewrite(question, request, result, model, settings, room)
        record["rewrite"] = rewrite
        scored = score(rewrite["reply"], question.labels)
    record.update(scored.record())
    kernel_errors = [t["kernel_error"] for t in turns if t.get("kernel_error")]
    model_errors = [t["model_error"] for t in turns if t.get("model_error")]
    record["kernel_error"] = kernel_errors[-1] if kernel_errors else None
    record["model_error"] = model_errors[-1] if model_errors else None
    record["seconds"] = {
        "question": round(time.monotonic() - started, 3),
        "kernel_start": round(kernel_start, 3),
        "generate": round(sum(t["seconds"]["generate"] for t in turns), 3),
        "execute": round(sum(t["seconds"]["execute"] for t in turns), 3),
        **(
            {"rewrite": record["rewrite"]["seconds"]}
            if isinstance(record.get("rewrite"), dict)
            else {}
        ),
    }
    record["tokens"] = {
        "completion": sum(int(t["tokens"]["completion"] or 0) for t in turns)
        + int((record.get("rewrite") or {}).get("tokens", {}).get("completion") or 0),
    }
    return record


def _turn_record(turn: Any, turn_io: _TurnIO) -> dict[str, Any]:
    outcome = turn.outcome
    reply = turn_io.reply
    return {
        "turn": turn.number,
        "step": turn.step,
        "attempt": turn.attempt,
        "reply": turn.reply,
        "code": turn.code,
        "skipped": turn.skipped,
        "outcome": (
            {"status": outcome.status, "ename": outcome.ename, "evalue": outcome.evalue}
            if outcome is not None
            else None
        ),
        "output": strip_ansi(outcome.output) if outcome is not None else "",
        "values": [list(pair) for pair in outcome.values] if outcome is not None else [],
        "feedback": turn.feedback,
        "recovery": turn_io.recovery,
        "kernel_error": turn_io.kernel_error,
        "model_error": turn_io.model_error,
        "tokens": {
            "prompt": reply.prompt_tokens if reply else None,
            "completion": reply.completion_tokens if reply else None,
        },
        "finish_reason": reply.finish_reason if reply else None,
        "seconds": {
            "generate": round(turn.generate_seconds, 3),
            "execute": round(turn.execute_seconds, 3) if outcome is not None else 0.0,
        },
    }


def _loop_record(result: Finished | None, prompt_error: str | None) -> dict[str, Any]:
    if result is None:
        return {
            "status": "prompt_too_long",
            "message": prompt_error or "",
            "budget": None,
            "steps": 0,
            "replies": 0,
        }
    return {
        "status": result.status,
        "message": result.message,
        "budget": result.budget,
        "steps": result.steps,
        "replies": len(result.turns),
    }


async def _rewrite(
    question: Question,
    request: str,
    result: Finished,
    model: ChatModel,
    settings: DABenchSettings,
    room: int,
) -> dict[str, Any]:
    """Protocol ``rewrite``: the same model writes its last response again in the format."""
    last = result.answer or (result.turns[-1].reply if result.turns else "")
    if not last.strip():
        return {"reply": "", "asked": None, "seconds": 0.0, "tokens": {"completion": 0}}
    asked = REWRITE_REQUEST.format(format=question.format.strip())
    messages: list[Message] = [
        {"role": "user", "content": request},
        {"role": "assistant", "content": last},
        {"role": "user", "content": asked},
    ]
    started = time.monotonic()
    try:
        reply = await model.reply(
            messages,
            settings.params(room),
            f"oci-eval dabench {question.task_id} rewrite",
        )
    except ModelFailure as exc:
        return {
            "reply": "",
            "asked": asked,
            "model_error": str(exc),
            "seconds": round(time.monotonic() - started, 3),
            "tokens": {"completion": 0},
        }
    return {
        "reply": reply.text,
        "asked": asked,
        "rewritten": last,
        "seconds": round(time.monotonic() - started, 3),
        "tokens": {"completion": reply.completion_tokens},
        "finish_reason": reply.finish_reason,
    }


# ---- a run ------------------------------------------------------------------------------------
async def run_dabench(
    questions: Sequence[Question],
    model: ChatModel,
    settings: DABenchSettings,
    out: Path,
    *,
    config: dict[str, Any] | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or continue) DABench into ``out``; returns the summary."""
    from .dabench_report import summarize

    store = RecordStore(out)
    selected = {q.task_id for q in questions}
    done = store.finished_ids() & selected if resume else set()
    todo = [q for q in questions if q.task_id not in done]
    results: dict[str, dict[str, Any]] = {
        r["task_id"]: r for r in store.load() if r.get("final") and r["task_id"] in done
    }
    run = load_run(out) if resume else {}
    sessions: list[dict[str, Any]] = list(run.get("sessions", []))
    session: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": 0.0,
        "questions": 0,
    }
    sessions.append(session)
    run.update(config=dict(config or {}), sessions=sessions, selected=len(questions))
    save_run(out, run)
    clock = time.monotonic()

    def summary() -> dict[str, Any]:
        wall = sum(float(s.get("seconds", 0.0)) for s in sessions)
        return summarize(
            list(results.values()), config=run["config"], wall_seconds=wall, selected=len(questions)
        )

    bar = _progress_bar(len(questions), len(done), progress)
    queue: asyncio.Queue[Question] = asyncio.Queue()
    for question in todo:
        queue.put_nowait(question)
    scratch = Path(tempfile.mkdtemp(prefix="oci-eval-dabench-"))

    def finished(record: dict[str, Any]) -> None:
        store.append([record])
        results[record["task_id"]] = record
        session["questions"] = int(session["questions"]) + 1
        session["seconds"] = round(time.monotonic() - clock, 1)
        save_run(out, run)
        write_reports(out, summary(), with_plot=False)
        bar.update(1)
        right = sum(1 for r in results.values() if r.get("verdict") == "right")
        bar.set_postfix_str(f"ABQ={100 * right / len(results):.1f}%")

    async def worker(index: int) -> None:
        home = scratch / f"worker-{index}"
        while not queue.empty():
            question = queue.get_nowait()
            record = await solve_question(
                question,
                model,
                settings,
                home / f"notebook-{question.id}",
                log_path=home / "kernel.log",
            )
            finished(record)

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
        final = summary()
        try:
            write_reports(out, final, with_plot=True)
        except Exception as exc:  # a report must not hide the run's own error
            print(f"oci-eval dabench: could not write the reports: {exc}", file=sys.stderr)
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="question",
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
        desc="oci-eval dabench",
    )


__all__ = [
    "DEFAULT_PROTOCOL",
    "PROTOCOLS",
    "PROTOCOL_TEXT",
    "PUBLISHED_PROTOCOL",
    "REWRITE_REQUEST",
    "SYSTEM_PROMPT",
    "ChatModel",
    "DABenchSettings",
    "browser_cut",
    "chat_messages",
    "kernel_values",
    "kernel_variables",
    "product_defaults",
    "run_dabench",
    "solve_question",
]
