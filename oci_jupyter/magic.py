"""``%%oci``: the refinement loop from inside a notebook cell.

The kernel asks the Jupyter server's model (never a model inside the kernel), streams the reply
into the cell, runs the code in the user's own namespace, feeds errors back and refines.
"""

from __future__ import annotations

import argparse
import shlex
import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import Markdown, display

from .client import ModelClient, ModelRequestError, ServerUnavailable, find_server
from .engine import GenerationParams, Message
from .execution import InKernelExecutor
from .kernel_context import describe_variables
from .loop import SKIP_NOTES, Execute, ExecutionOutcome, Finished, Generate, RefinementLoop
from .prompts import (
    CellContext,
    NotebookContext,
    PromptLimits,
    PromptTooLong,
    build_messages,
    failure_names,
    fix_request,
)

USAGE = """\
%%oci [options]
<what you want, in plain language; {name} inserts a variable's value>

%oci <request on one line>        the same for one line
%oci fix [options]                fix the last cell that failed in this kernel
%oci reset                        forget the conversation (it carries across %%oci cells)
%oci status                       the server's model and its state
"""


def _parser() -> argparse.ArgumentParser:
    # argparse %-formats its texts: "%%%%" shows as "%%".
    parser = argparse.ArgumentParser(prog="%%%%oci", add_help=False, exit_on_error=False)
    parser.add_argument("--turns", type=int, default=3, help="most model replies (default 3)")
    parser.add_argument("--no-exec", action="store_true", help="only write the code")
    parser.add_argument("--insert", action="store_true", help="put the final code in a new cell")
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
    if options.turns < 1:
        raise UsageError("--turns must be at least 1")
    if options.max_tokens < 1:
        raise UsageError("--max-tokens must be at least 1")
    if not 0 <= options.temperature <= 2:
        raise UsageError("--temperature must be between 0 and 2")
    return options


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
            self._run(request, options, display_request=None)
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
        display_request: str | None,
        context: NotebookContext | None = None,
        needs: Collection[str] = (),
        failed_code: tuple[tuple[str, ExecutionOutcome], ...] = (),
    ) -> Finished:
        started = time.perf_counter()
        client = self._model_client()
        status = client.status()
        if status.get("state") != "ready":
            reason = status.get("error") or status.get("detail") or ""
            raise ModelRequestError(503, f"the model is {status.get('state')}. {reason}".strip())
        window = int(status.get("context_length") or 4096)
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
            )
        except PromptTooLong as exc:
            raise UsageError(f"the request is too long: {exc}") from exc
        loop = RefinementLoop(messages, max_turns=options.turns, failed_code=failed_code)
        first_turn_length = len(messages)
        executor = InKernelExecutor(self.shell, time_limit=options.timeout)
        params = GenerationParams(
            max_tokens=limits.reply_tokens, temperature=options.temperature, top_p=0.95
        )
        timing = _Timing()
        self._running = True
        try:
            action: Generate | Execute | Finished = loop.start()
            while not isinstance(action, Finished):
                if isinstance(action, Generate):
                    mark = time.perf_counter()
                    try:
                        reply = self._generate(client, action, action.params(params), options.quiet)
                    except KeyboardInterrupt:
                        action = loop.cancel("Interrupted while the model was writing.")
                        break
                    except (ServerUnavailable, ModelRequestError) as exc:
                        action = loop.on_model_error(str(exc))
                        break
                    timing.generate += time.perf_counter() - mark
                    replied = action.turn
                    action = loop.on_reply(reply)
                    skipped = loop.turns[replied - 1].skipped
                    if skipped is not None and not options.quiet:
                        display(Markdown(f"*{SKIP_NOTES[skipped]}*"))
                    if isinstance(action, Execute) and options.no_exec:
                        action = loop.cancel("Not run (--no-exec).")
                        break
                else:
                    mark = time.perf_counter()
                    outcome = executor.run(action.code)
                    timing.execute += time.perf_counter() - mark
                    if outcome.status == "cancelled":
                        action = loop.cancel("Interrupted while the code ran.")
                        break
                    action = loop.on_outcome(outcome)
        finally:
            self._running = False
        self.last_result = action
        self._remember(request, loop, first_turn_length)
        self._summarise(action, options)
        if options.insert and action.final_code:
            self.shell.set_next_input(action.final_code, replace=False)
        # Everything from the status check to the summary, for benchmarks/magic_overhead.py.
        timing.total = time.perf_counter() - started
        timing.turns = len(action.turns)
        self.last_timing = timing
        return action

    def _generate(
        self, client: ModelClient, action: Generate, params: GenerationParams, quiet: bool
    ) -> str:
        heading = f"**oci · turn {action.turn}**\n\n" if action.turn > 1 else ""
        handle = None if quiet else display(Markdown(heading + "…"), display_id=True)
        pieces: list[str] = []
        last_update = 0.0
        stream = client.stream_chat(action.messages, params)
        try:
            for piece in stream:
                pieces.append(piece)
                now = time.monotonic()
                if handle is not None and now - last_update > 0.1:  # ~10 updates a second
                    handle.update(Markdown(heading + "".join(pieces) + " ▌"))
                    last_update = now
        finally:
            stream.close()  # on an interrupt this drops the connection: the server cancels
        reply = "".join(pieces)
        if handle is not None:
            handle.update(Markdown(heading + (reply or "*(empty reply)*")))
        return reply

    def _summarise(self, result: Finished, options: argparse.Namespace) -> None:
        turns = len(result.turns)
        plural = "s" if turns != 1 else ""
        icon = {"success": "✅", "no_code": "💬", "cancelled": "⏹"}.get(result.status, "❌")
        headline = result.status.replace("_", " ")
        if options.no_exec and result.final_code:
            icon, headline = "📝", "code written, not run (--no-exec)"
        lines = [f"{icon} **oci: {headline}** after {turns} turn{plural}."]
        if result.status != "success" and result.message and not options.no_exec:
            lines.append(result.message)
        code = result.final_code
        if code and not options.quiet and (turns > 1 or result.status != "success"):
            lines.append(f"Final code:\n```python\n{code.rstrip()}\n```")
        elif code and options.quiet:
            lines.append(f"```python\n{code.rstrip()}\n```")
        if options.insert and code:
            lines.append("The final code is in a new cell below.")
        display(Markdown("\n\n".join(lines)))

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
            None,
            context,
            needs=failure_names(failure.source, failure.outcome),
            failed_code=((failure.source, failure.outcome),),
        )
        if result.status == "success":
            self.last_failure = None

    # ---- context, memory, status -------------------------------------------------------------
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

    def _remember(self, request: str, loop: RefinementLoop, first_turn_length: int) -> None:
        """Keep the conversation, with the plain request instead of the context-laden prompt
        (the next request gets fresh context anyway)."""
        self.history = [
            *self.history,
            {"role": "user", "content": request},
            *loop.messages[first_turn_length:],
        ]

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
