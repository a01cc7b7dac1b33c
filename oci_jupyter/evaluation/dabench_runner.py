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

import asyncio
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from ..driver import drive
from ..engine import Message
from ..loop import Execute, Finished, RefinementLoop, Turn
from ..prompts import (
    SYSTEM_PROMPT,
    NotebookContext,
    PromptTooLong,
    VariableInfo,
    strip_ansi,
)
from ..prompts.values import assigned_names
from ..request import ModelSettings, Request, prepare
from ..types import ExecutionOutcome
from .dabench import Question, request_text
from .dabench_notebook import browser_cut, kernel_values, kernel_variables, prepare_folder
from .dabench_report import PROTOCOL_TEXT, PUBLISHED_PROTOCOL, write_reports
from .dabench_scoring import Score, score
from .dabench_settings import (
    DEFAULT_PROTOCOL,
    PROTOCOLS,
    ChatModel,
    DABenchSettings,
    product_defaults,
)
from .kernels import KernelSession
from .models import ModelFailure
from .run_folder import RecordStore, load_run
from .runs import RunBook, progress_bar, run_workers
from .turns import TurnIO, generator, run_in_kernel, turn_fields

REWRITE_REQUEST = """\
Write your final answer again in exactly the required format and nothing else: one \
@answer_name[value] for each answer name of the format, in its order, each value as the \
format asks.

The required format: {format}"""
"""The user turn of protocol ``rewrite``, after the request and the final response."""


# ---- one question ------------------------------------------------------------------------------
def chat_messages(
    request: str,
    variables: Sequence[VariableInfo],
    model: ChatModel,
    reply_tokens: int,
    folder: Path | None = None,
) -> tuple[list[Message], int]:
    """The first prompt of a chat request in a notebook with no cells whose folder is
    ``folder`` (the data files the request names there are previewed, as the chat previews
    them), built as the chat builds it (:func:`oci_jupyter.request.prepare`), and the reply
    room it keeps."""
    context = NotebookContext(language="python", cells=[], variables=list(variables))
    served = ModelSettings(model.context_length, model.count_tokens, reply_tokens=reply_tokens)
    prepared = prepare(Request(request, context=context), served, folder=folder)
    return prepared.messages, prepared.params.max_tokens


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
    io: dict[int, TurnIO] = {}
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

            ask = partial(model.reply, cut=True)  # read as the chat reads a reply
            generate = generator(ask, params, io, f"oci-eval dabench {question.task_id}")

            async def execute(action: Execute) -> ExecutionOutcome:
                turn_io = io[action.turn]
                run = await run_in_kernel(
                    kernel, action.code, settings.time_limit, turn_io, "question"
                )
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
    turns = [_turn_record(turn, io.get(turn.number, TurnIO())) for turn in finished_turns]
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


def _turn_record(turn: Turn, turn_io: TurnIO) -> dict[str, Any]:
    fields = turn_fields(turn, turn_io, strip_ansi)
    values = [list(pair) for pair in turn.outcome.values] if turn.outcome is not None else []
    return {"turn": turn.number, **fields, "values": values}


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
    book = RunBook.open(
        out,
        load_run(out) if resume else {},
        config=dict(config or {}),
        selected=len(questions),
        unit="questions",
    )

    def summary() -> dict[str, Any]:
        return summarize(
            list(results.values()),
            config=book.run["config"],
            wall_seconds=book.wall_seconds,
            selected=len(questions),
        )

    bar = progress_bar(
        len(questions), len(done), progress, unit="question", desc="oci-eval dabench"
    )
    scratch = Path(tempfile.mkdtemp(prefix="oci-eval-dabench-"))

    def finished(record: dict[str, Any]) -> None:
        store.append([record])
        results[record["task_id"]] = record
        book.count_one()
        write_reports(out, summary(), with_plot=False)
        bar.update(1)
        right = sum(1 for r in results.values() if r.get("verdict") == "right")
        bar.set_postfix_str(f"ABQ={100 * right / len(results):.1f}%")

    async def worker(index: int, queue: asyncio.Queue[Question]) -> None:
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

    def write_final(final: dict[str, Any]) -> None:
        write_reports(out, final, with_plot=True)

    return await run_workers(
        todo, settings.workers, worker, book, bar, scratch, summary, write_final, "oci-eval dabench"
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
