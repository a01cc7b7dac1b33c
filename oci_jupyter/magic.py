"""``%%oci``: the interpreter loop from inside a notebook cell (and ``%oci``: one line,
``%oci fix``, ``%oci edit``).

The kernel asks the Jupyter server's model (never a model inside the kernel), streams the reply
into the cell, runs its code in the user's own namespace as soon as the code block closes,
feeds every result back, and lets the model answer, take the next step, or fix what failed.
The loop's rules are :mod:`oci_jupyter.loop`'s, driven by :func:`oci_jupyter.driver.drive_sync`;
this module is only its I/O in a kernel: the server's model over HTTP, the kernel's namespace,
and the cell's output.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import Markdown, display

from .client import ModelClient, ModelRequestError, ServerUnavailable, find_server
from .driver import ModelFailed, ReplyCutter, Stopped, TurnEnded, drive_sync
from .execution import InKernelExecutor
from .kernel_context import describe_variables
from .loop import SKIP_NOTES, Execute, Finished, Generate, LoopMode, RefinementLoop
from .magic_edit import Failure, diff_text, edit_target, parse_edit, show_diff
from .magic_options import USAGE, UsageError, budgets_for, choices, parse_options, parser
from .magic_view import (
    BUDGET_NAMES,
    STEPS_MIME,
    ReplyView,
    heading,
    inserted_cell,
    summary_line,
)
from .prompts import CellContext, NotebookContext, PromptTooLong
from .request import EditTarget, FixTarget, LoopDefaults, ModelSettings, Request, prepare
from .safe_markdown import safe_markdown
from .texts import not_ready
from .types import ExecutionOutcome, GenerationParams, Message

__all__ = [
    "STEPS_MIME",
    "USAGE",
    "OCIMagics",
    "UsageError",
    "budgets_for",
    "heading",
    "inserted_cell",
    "load_ipython_extension",
    "parse_options",
    "summary_line",
]


@dataclass
class _Timing:
    generate: float = 0.0
    execute: float = 0.0
    total: float = 0.0
    turns: int = 0


@magics_class
class OCIMagics(Magics):
    """The %%oci / %oci magics. Load with ``%load_ext oci_jupyter``."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.history: list[Message] = []
        self.last_failure: Failure | None = None
        self.last_timing: _Timing | None = None
        self.last_result: Finished | None = None
        self._client: ModelClient | None = None
        self._running = False
        shell.events.register("post_run_cell", self._remember_failure)

    # ---- entry point -------------------------------------------------------------------------
    @line_cell_magic
    def oci(self, line: str, cell: str | None = None) -> None:
        first, _, rest = line.strip().partition(" ")
        try:
            if cell is None and first == "reset":
                self.history.clear()
                print("oci: conversation cleared.")
                return
            if cell is None and first == "status":
                self._show_status()
                return
            if cell is None and first == "fix":
                self._fix(parse_options(rest))
                return
            if cell is None and first == "edit":
                self._edit(rest)
                return
            options = parse_options(line)
            request = cell if cell is not None else " ".join(options.words)
            if cell is not None and options.words:
                request = " ".join(options.words) + "\n" + request
            request = self.shell.var_expand(request.strip(), depth=2)
            if not request.strip():
                raise UsageError("say what you want after %%oci (see %%oci?)")
            self._run(request, options)
        except UsageError as exc:
            print(f"oci: {exc}\n\n{USAGE}")
        except (ServerUnavailable, ModelRequestError) as exc:
            print(f"oci: {exc}")

    oci.__doc__ = USAGE + "\nOptions:\n" + parser().format_help().split("options:", 1)[-1]

    # ---- the loop, driven with this kernel's I/O ---------------------------------------------
    def _run(
        self,
        words: str,
        options: argparse.Namespace,
        mode: LoopMode = "chat",
        fix: FixTarget | None = None,
        edit: EditTarget | None = None,
        *,
        active: int | None = None,
        before_run: Callable[[Execute], None] | None = None,
    ) -> Finished:
        """``active``: the number of the cell the request is about (an edit's), marked in
        the context; ``before_run``: shown before each code runs (an edit's diff)."""
        started = time.perf_counter()
        client = self._model_client()
        status = client.status()
        if status.get("state") != "ready":
            state = str(status.get("state"))
            said = str(not_ready(state, status.get("error") or None))
            # What a load is doing right now goes after the sentence (as in the endpoint's 503).
            detail = status.get("detail") if state == "loading" else None
            raise ModelRequestError(503, f"{said} ({detail})" if detail else said)
        window = int(status.get("context_length") or 4096)
        request = Request(
            words,
            context=self._context(active),
            conversation=self.history,
            mode=mode,
            fix=fix,
            edit=edit,
            choices=choices(options),
            defaults=LoopDefaults.from_json(status.get("loop")),
            memory="as_said",
        )
        model = ModelSettings(
            window=window,
            count=client.count_tokens,
            reply_tokens=options.max_tokens,
            temperature=options.temperature,
        )
        try:
            prepared = prepare(request, model, folder=Path.cwd())  # the kernel runs in its folder
        except PromptTooLong as exc:
            raise UsageError(f"the request is too long: {exc}") from exc
        loop, params = prepared.loop, prepared.params
        executor = InKernelExecutor(self.shell, time_limit=options.timeout)
        timing = _Timing()
        views: dict[int, ReplyView] = {}

        def generate(action: Generate) -> str:
            mark = time.perf_counter()
            view = views[action.turn] = ReplyView(options.quiet)
            try:
                return self._generate(client, action, action.params(params), view, loop)
            finally:
                timing.generate += time.perf_counter() - mark

        def execute(action: Execute) -> ExecutionOutcome:
            views[action.turn].show(heading(action.step, action.attempt))
            if before_run is not None:
                before_run(action)
            if options.no_exec:
                raise Stopped("Not run (--no-exec).")
            mark = time.perf_counter()
            try:
                return executor.run(action.code)
            finally:
                timing.execute += time.perf_counter() - mark

        def notify(event: TurnEnded) -> None:
            turn = event.turn
            note = None
            if turn.skipped is not None:
                views[turn.number].show(heading(turn.step, turn.attempt))
                note = SKIP_NOTES[turn.skipped]
            elif turn.code is not None and loop.result is not None and loop.result.budget:
                note = f"not run: the {BUDGET_NAMES[loop.result.budget]} budget is used up"
            if note is not None and not options.quiet:
                display(Markdown(f"*{note}*"))

        self._running = True
        try:
            result = drive_sync(loop, generate, execute, notify)
        finally:
            self._running = False
        self.last_result = result
        self.history = prepared.remember()
        last_view = views.get(len(result.turns)) if result.answer else None
        self._summarise(result, options, mode, last_view)
        # Everything from the status check to the summary, for benchmarks/magic_overhead.py.
        timing.total = time.perf_counter() - started
        timing.turns = len(result.turns)
        self.last_timing = timing
        return result

    def _generate(
        self,
        client: ModelClient,
        action: Generate,
        params: GenerationParams,
        view: ReplyView,
        loop: RefinementLoop,
    ) -> str:
        """The reply, streamed into the view and cut where its first code block closes: the
        code runs at once, and what the model says about it comes after it read the result."""
        cutter = ReplyCutter()
        guess = heading(*loop.next_cell())
        stream = client.stream_chat(action.messages, params, on_waiting=view.waiting)
        try:
            for piece in stream:
                cutter.feed(piece)
                view.stream(cutter.text, guess)
                if cutter.done:
                    break
        except KeyboardInterrupt as exc:
            raise Stopped("Interrupted while the model was writing.") from exc
        except ServerUnavailable as exc:  # (a ModelRequestError is a ModelFailed already)
            raise ModelFailed(str(exc)) from exc
        finally:
            stream.close()  # before its end this drops the connection: the server cancels
            view.show()  # as far as it came, without the cursor
        return cutter.text

    def _summarise(
        self,
        result: Finished,
        options: argparse.Namespace,
        mode: LoopMode,
        answer_view: ReplyView | None,
    ) -> None:
        """The summary line, then the model's answer (or explanation) as the last thing."""
        lines = [summary_line(result, mode, options.no_exec)]
        codes = result.step_codes()
        if options.no_exec and result.final_code is not None:
            codes = [*codes, result.final_code]
        if options.quiet and codes:
            lines += [f"```python\n{code.rstrip()}\n```" for code in codes]
        steps_marker = None
        if mode == "edit":
            # The kernel cannot rewrite the notebook's cell: the change is offered below it.
            if codes and (result.status == "success" or options.no_exec):
                self.shell.set_next_input(codes[-1], replace=False)
                lines.append("The changed code is in a new cell below.")
        elif options.insert and codes:
            combined = inserted_cell(codes)
            self.shell.set_next_input(combined, replace=False)
            if len(codes) > 1:
                lines.append(f"The code of the {len(codes)} steps is in the cells below.")
                # A kernel gets one new cell per run; JupyterLab with oci_jupyter splits it
                # into one cell per step from this (src/magicsteps.ts); elsewhere it stays one.
                steps_marker = {
                    "text/plain": f"(the {len(codes)} steps of this request, one cell each)",
                    STEPS_MIME: {"combined": combined, "cells": codes},
                }
            else:
                lines.append("The code is in a new cell below.")
        summary = safe_markdown("\n\n".join(lines))
        # The answer streamed into its reply's place: the summary goes there, above it.
        if answer_view is None or not answer_view.replace(summary):
            display(Markdown(summary))
        if steps_marker is not None:
            display(steps_marker, raw=True)
        if result.answer.strip():
            display(Markdown(safe_markdown(result.answer)))  # the last thing shown

    # ---- %oci fix ----------------------------------------------------------------------------
    def _remember_failure(self, result: Any) -> None:
        error = result.error_before_exec or result.error_in_exec
        if error is None or self._running or isinstance(error, KeyboardInterrupt):
            return
        source = result.info.raw_cell if result.info is not None else ""
        if source.lstrip().startswith(("%%oci", "%oci")):
            return
        executor = InKernelExecutor(self.shell)
        self.last_failure = Failure(
            result.execution_count or 0,
            source,
            ExecutionOutcome(
                "error",
                ename=type(error).__name__,
                evalue=str(error),
                traceback=executor._traceback(error),
            ),
        )

    def _fix(self, options: argparse.Namespace) -> None:
        failure = self.last_failure
        if failure is None:
            raise UsageError("no cell has failed in this kernel since %load_ext oci_jupyter")
        display(Markdown(f"**oci: fixing** `{failure.outcome.summary()}`"))
        fix = FixTarget(failure.source, failure.outcome)
        result = self._run("", options, mode="fix", fix=fix)
        if result.status == "success":
            self.last_failure = None

    # ---- %oci edit ---------------------------------------------------------------------------
    def _edit(self, rest: str) -> None:
        """``%oci edit [N] <instruction>``: change In [N] (else the last cell run) as asked,
        show the diff, run the changed code, refine it if it fails, end with the model's one
        sentence on what it changed, and offer the code as the next cell."""
        number, words, options = parse_edit(rest)
        instruction = self.shell.var_expand(words, depth=2).strip()
        if not instruction:
            raise UsageError("say how to change the cell: %oci edit [N] <instruction>")
        number, target = edit_target(self.shell, number, self.last_failure)
        label = f"In [{number}]"
        display(Markdown(f"**oci: changing** {label}"))

        def show(action: Execute) -> None:
            show_diff(diff_text(target.source, action.code, label))

        self._run(instruction, options, mode="edit", edit=target, active=number, before_run=show)

    # ---- context, status ---------------------------------------------------------------------
    def _context(self, active: int | None = None) -> NotebookContext:
        """Variables and the recent cells of this kernel's history; ``active``: the number
        of the cell the request is about."""
        inputs = list(self.shell.user_ns.get("In", []))[1:-1]  # [0] is empty, [-1] is this cell
        outputs = self.shell.user_ns.get("Out", {})
        cells = [
            CellContext(
                source=source,
                output=_text(outputs.get(number)),
                label=f"In [{number}]",
                active=number == active,
            )
            for number, source in enumerate(inputs, start=1)
            if source.strip() and not source.lstrip().startswith(("%%oci", "%oci", "get_ipython"))
        ]
        return NotebookContext(
            language="python",
            cells=cells[-200:],  # build_messages keeps the most relevant that fit
            variables=describe_variables(self.shell.user_ns),
        )

    def _show_status(self) -> None:
        status = self._model_client().status()
        state = status.get("state")
        detail = status.get("error") or status.get("detail") or ""
        print(
            f"oci: {status.get('model')} on {status.get('engine')} ({status.get('device')}): "
            f"{state}{' - ' + detail if detail else ''}; server {self._model_client().server.url}"
        )

    def _model_client(self) -> ModelClient:
        if self._client is None:
            self._client = ModelClient(find_server())
        return self._client


def _text(value: Any) -> str:
    if value is None:
        return ""
    try:
        return repr(value)[:600]
    except Exception:
        return ""


def load_ipython_extension(shell: Any) -> None:
    shell.register_magics(OCIMagics(shell))
