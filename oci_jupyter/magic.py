"""``%%oci``: the interpreter loop from inside a notebook cell.

The kernel asks the Jupyter server's model (never a model inside the kernel), streams the reply
into the cell, runs its code in the user's own namespace as soon as the code block closes,
feeds every result back, and lets the model answer, take the next step, or fix what failed.
The loop's rules are :mod:`oci_jupyter.loop`'s, driven by :func:`oci_jupyter.driver.drive_sync`;
this module is only its I/O in a kernel: the server's model over HTTP, the kernel's namespace,
and the cell's output.
"""

from __future__ import annotations

import argparse
import shlex
import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import Markdown, display

from .client import ModelClient, ModelRequestError, ServerUnavailable, find_server
from .driver import ModelFailed, ReplyCutter, Stopped, TurnEnded, drive_sync
from .execution import InKernelExecutor
from .kernel_context import describe_variables
from .loop import (
    SKIP_NOTES,
    Budgets,
    Execute,
    Finished,
    Generate,
    LoopMode,
    RefinementLoop,
    alternate,
    bounded,
)
from .prompts import (
    CellContext,
    NotebookContext,
    PromptLimits,
    PromptTooLong,
    build_messages,
    failure_names,
    fix_request,
)
from .prompts.files import file_previews
from .safe_markdown import safe_markdown
from .types import ExecutionOutcome, GenerationParams, Message

USAGE = """\
%%oci [options]
<what you want, in plain language; {name} inserts a variable's value>

%oci <request on one line>        the same for one line
%oci fix [options]                fix the last cell that failed in this kernel
%oci reset                        forget the conversation (it carries across %%oci cells)
%oci status                       the server's model and its state
"""

FALLBACK_BUDGETS = Budgets(attempts=3, steps=4, replies=8)
"""When the server does not say its own (``c.OCI.max_attempts`` ...): an older server."""
MEMORY_CHARS_PER_TOKEN = 3
"""The conversation kept across cells is bounded by the model's window times this: more than
any prompt can hold (code and English run ~3-4 characters a token)."""
UPDATES_PER_SECOND = 10
_BUDGET_NAMES = {"attempts": "attempt", "steps": "step", "replies": "reply"}


def _parser() -> argparse.ArgumentParser:
    # argparse %-formats its texts: "%%%%" shows as "%%".
    parser = argparse.ArgumentParser(prog="%%%%oci", add_help=False, exit_on_error=False)
    parser.add_argument(
        "--turns", type=int, help="tries of code per cell: the first and its fixes (server's, 3)"
    )
    parser.add_argument("--steps", type=int, help="most cells of code per request (server's, 4)")
    parser.add_argument("--replies", type=int, help="most model replies (server's, 8)")
    parser.add_argument(
        "--no-read", action="store_true", help="stop at the first run without errors"
    )
    parser.add_argument("--no-exec", action="store_true", help="only write the code")
    parser.add_argument("--insert", action="store_true", help="put the steps' code in a cell below")
    parser.add_argument("--quiet", action="store_true", help="show outputs and the summary only")
    parser.add_argument("--temperature", type=float, default=0.2, help="sampling (default 0.2)")
    parser.add_argument("--max-tokens", type=int, default=1024, help="longest reply (1024)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per run of code")
    parser.add_argument("words", nargs="*", help=argparse.SUPPRESS)
    return parser


class UsageError(ValueError):
    """Bad options or an empty request: shown as a message, never as a traceback."""


def parse_options(line: str) -> argparse.Namespace:
    parser = _parser()
    try:
        options, unknown = parser.parse_known_args(shlex.split(line))
    except (argparse.ArgumentError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    flags = [u for u in unknown if u.startswith("-")]
    if flags:
        raise UsageError(f"unknown option {flags[0]} (see %%oci?)")
    options.words += unknown
    for name in ("turns", "steps", "replies", "max_tokens"):
        value = getattr(options, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 <= options.temperature <= 2:
        raise UsageError("--temperature must be between 0 and 2")
    return options


def budgets_for(options: argparse.Namespace, defaults: Any) -> Budgets:
    """The options' budgets, else the server's (``/oci/status`` "loop"), else the fallbacks."""
    server = defaults if isinstance(defaults, dict) else {}

    def pick(option: int | None, key: str, fallback: int) -> int:
        if option is not None:
            return option
        value = server.get(key)
        return value if isinstance(value, int) and value >= 1 else fallback

    return Budgets(
        attempts=pick(options.turns, "max_attempts", FALLBACK_BUDGETS.attempts),
        steps=pick(options.steps, "max_steps", FALLBACK_BUDGETS.steps),
        replies=pick(options.replies, "max_replies", FALLBACK_BUDGETS.replies),
    )


def heading(step: int, attempt: int) -> str:
    """The heading of a reply whose code is for this step and attempt: "oci · step 2",
    "oci · attempt 2", "oci · step 2 · attempt 3"; none for the first try of the first step."""
    parts = ([f"step {step}"] if step > 1 else []) + ([f"attempt {attempt}"] if attempt > 1 else [])
    return "oci · " + " · ".join(parts) if parts else ""


def summary_line(result: Finished, mode: LoopMode, no_exec: bool = False) -> str:
    """The line above the answer, e.g. "✅ **oci: answered after 2 steps, 3 replies.**", with
    why the loop stopped when it did not end as it should (a budget that ran out, an error)."""
    if no_exec and result.status == "cancelled" and result.final_code is not None:
        return "📝 **oci: code written, not run (--no-exec).**"
    icon = {"success": "✅", "no_code": "💬", "cancelled": "⏹"}.get(result.status, "❌")
    text = result.summary()
    if mode == "fix" and result.status == "success":
        text = "fixed" + text[text.index(" after ") :]
    line = f"{icon} **oci: {text}.**"
    if result.message and (result.budget or result.status not in ("success", "no_code")):
        line += f" {result.message}"
    if result.budget:
        budget = f"{_BUDGET_NAMES[result.budget]} budget"
        if budget not in result.message:
            line += f" (the {budget} ran out)"
    return line


STEPS_MIME = "application/vnd.oci.steps+json"
"""An output naming each step's code apart, for the front end to insert one cell per step."""


def inserted_cell(codes: list[str]) -> str:
    """The code to put in a new cell: one step's as it is; several steps' one after the other,
    each under a comment (the frontend inserts one cell per execute reply, see --insert)."""
    if len(codes) == 1:
        return codes[0]
    return "\n".join(f"# oci · step {n}\n{code.rstrip()}\n" for n, code in enumerate(codes, 1))


@dataclass
class _Failure:
    source: str
    outcome: ExecutionOutcome


@dataclass
class _Timing:
    generate: float = 0.0
    execute: float = 0.0
    total: float = 0.0
    turns: int = 0


class _ReplyView:
    """One model reply, streamed into a display of the cell's output."""

    def __init__(self, quiet: bool) -> None:
        self.heading = ""
        self.text = ""
        self._handle = None if quiet else display(Markdown("…"), display_id=True)
        self._shown = 0.0

    def stream(self, text: str, guess: str) -> None:
        self.text = text
        # A heading says which cell the code is for: guessed while the code block opens.
        if "```" in text:
            self.heading = guess
        now = time.monotonic()
        if self._handle is not None and now - self._shown > 1 / UPDATES_PER_SECOND:
            self._handle.update(Markdown(self._markdown(safe_markdown(self.text) + " ▌")))
            self._shown = now

    def waiting(self, ahead: int) -> None:
        """The request waits for the model (other requests go first)."""
        if self._handle is not None and not self.text:
            plural = "request" if ahead == 1 else "requests"
            self._handle.update(
                Markdown(f"*waiting for the model: {ahead} {plural} ahead…*" if ahead else "…")
            )

    def show(self, new_heading: str | None = None) -> None:
        if new_heading is not None:
            self.heading = new_heading
        if self._handle is not None:
            shown = safe_markdown(self.text) or "*(empty reply)*"
            self._handle.update(Markdown(self._markdown(shown)))

    def replace(self, markdown: str) -> bool:
        """Show something else in this reply's place (the summary above the answer)."""
        if self._handle is None:
            return False
        self._handle.update(Markdown(markdown))
        return True

    def _markdown(self, text: str) -> str:
        return f"**{self.heading}**\n\n{text}" if self.heading else text


@magics_class
class OCIMagics(Magics):
    """The %%oci / %oci magics. Load with ``%load_ext oci_jupyter``."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.history: list[Message] = []
        self.last_failure: _Failure | None = None
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

    oci.__doc__ = USAGE + "\nOptions:\n" + _parser().format_help().split("options:", 1)[-1]

    # ---- the loop, driven with this kernel's I/O ---------------------------------------------
    def _run(
        self,
        request: str,
        options: argparse.Namespace,
        context: NotebookContext | None = None,
        needs: Collection[str] = (),
        failed_code: tuple[tuple[str, ExecutionOutcome], ...] = (),
        mode: LoopMode = "chat",
    ) -> Finished:
        started = time.perf_counter()
        client = self._model_client()
        status = client.status()
        if status.get("state") != "ready":
            reason = status.get("error") or status.get("detail") or ""
            raise ModelRequestError(503, f"the model is {status.get('state')}. {reason}".strip())
        window = int(status.get("context_length") or 4096)
        defaults = status.get("loop") if isinstance(status.get("loop"), dict) else {}
        limits = PromptLimits(reply_tokens=min(options.max_tokens, window // 2))
        try:
            messages = build_messages(
                request,
                context or self._context(),
                window=window,
                count=client.count_tokens,
                history=self.history,
                limits=limits,
                needs=needs,
                **({"hint": ""} if mode == "fix" else {}),  # a fix asks for code already
                files=file_previews(request, Path.cwd()),  # the kernel runs in its folder
            )
        except PromptTooLong as exc:
            raise UsageError(f"the request is too long: {exc}") from exc
        loop = RefinementLoop(
            messages,
            budgets=budgets_for(options, defaults),
            mode=mode,
            read_results=not options.no_read and bool(defaults.get("read_results", True)),
            failed_code=failed_code,
        )
        executor = InKernelExecutor(self.shell, time_limit=options.timeout)
        params = GenerationParams(
            max_tokens=limits.reply_tokens, temperature=options.temperature, top_p=0.95
        )
        timing = _Timing()
        views: dict[int, _ReplyView] = {}

        def generate(action: Generate) -> str:
            mark = time.perf_counter()
            view = views[action.turn] = _ReplyView(options.quiet)
            try:
                return self._generate(client, action, action.params(params), view, loop)
            finally:
                timing.generate += time.perf_counter() - mark

        def execute(action: Execute) -> ExecutionOutcome:
            views[action.turn].show(heading(action.step, action.attempt))
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
                note = f"not run: the {_BUDGET_NAMES[loop.result.budget]} budget is used up"
            if note is not None and not options.quiet:
                display(Markdown(f"*{note}*"))

        self._running = True
        try:
            result = drive_sync(loop, generate, execute, notify)
        finally:
            self._running = False
        self.last_result = result
        # The request as the user said it, then every reply and result; roles alternating,
        # and never more than a prompt could hold.
        self.history = alternate(
            bounded([*self.history, *loop.exchange(request)], window * MEMORY_CHARS_PER_TOKEN)
        )
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
        view: _ReplyView,
        loop: RefinementLoop,
    ) -> str:
        """The reply, streamed into the view and cut where its first code block closes: the
        code runs at once, and what the model says about it comes after it read the result."""
        cutter = ReplyCutter()
        guess = heading(*_next_cell(loop))
        stream = client.stream_chat(action.messages, params, on_waiting=view.waiting)
        try:
            for piece in stream:
                cutter.feed(piece)
                view.stream(cutter.text, guess)
                if cutter.done:
                    break
        except KeyboardInterrupt as exc:
            raise Stopped("Interrupted while the model was writing.") from exc
        except (ServerUnavailable, ModelRequestError) as exc:
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
        answer_view: _ReplyView | None,
    ) -> None:
        """The summary line, then the model's answer (or explanation) as the last thing."""
        lines = [summary_line(result, mode, options.no_exec)]
        codes = result.step_codes()
        if options.no_exec and result.final_code is not None:
            codes = [*codes, result.final_code]
        if options.quiet and codes:
            lines += [f"```python\n{code.rstrip()}\n```" for code in codes]
        steps_marker = None
        if options.insert and codes:
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
        self.last_failure = _Failure(
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
        # The failing cell is in the request; the cells defining what it reads rank first.
        context = self._context()
        context = replace(context, cells=[c for c in context.cells if c.source != failure.source])
        result = self._run(
            fix_request(failure.source, failure.outcome),
            options,
            context,
            needs=failure_names(failure.source, failure.outcome),
            failed_code=((failure.source, failure.outcome),),
            mode="fix",
        )
        if result.status == "success":
            self.last_failure = None

    # ---- context, status ---------------------------------------------------------------------
    def _context(self) -> NotebookContext:
        """Variables and the recent cells of this kernel's history."""
        inputs = list(self.shell.user_ns.get("In", []))[1:-1]  # [0] is empty, [-1] is this cell
        outputs = self.shell.user_ns.get("Out", {})
        cells = [
            CellContext(
                source=source,
                output=_text(outputs.get(number)),
                label=f"In [{number}]",
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


def _next_cell(loop: RefinementLoop) -> tuple[int, int]:
    """The step and attempt the reply being written is likely for, if it holds code (the loop
    says for sure once it does)."""
    previous = loop.turns[-2] if len(loop.turns) >= 2 else None
    if previous is None:
        return 1, 1
    ran_ok = previous.skipped == "repeat_ok" or (
        previous.outcome is not None and previous.outcome.ok
    )
    if ran_ok and loop.mode == "chat":
        return loop.step + 1, 1
    return max(loop.step, 1), previous.attempt + 1


def _text(value: Any) -> str:
    if value is None:
        return ""
    try:
        return repr(value)[:600]
    except Exception:
        return ""


def load_ipython_extension(shell: Any) -> None:
    shell.register_magics(OCIMagics(shell))
