"""What the model reads: the system prompt, the notebook's context, execution feedback, and the
fitting of all of it into the model's context window.

Pure functions: token counts come from a ``count`` callback (the engine's tokenizer in the
server, the server's ``/oci/tokenize`` endpoint in a kernel), so this module runs anywhere.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import re
import textwrap
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .types import ExecutionOutcome, Message

SYSTEM_PROMPT = """\
You are OpenCodeInterpreter, a code interpreter inside a Jupyter notebook.
You answer by running code: reply with one ```python code block first (at most one short \
sentence before it) and stop after the block. The code runs at once in the user's kernel, \
where the notebook's variables already exist and new ones persist. Then you read its output, \
shown as "Execution result:".
- Never guess a value, a count or a result about the user's data or a computation: compute \
it with code and print it.
- After a result: if it answers the request, answer in plain words from the printed values, \
without a code block. If more is needed, give the next step's code. If it shows an error or \
a wrong result, explain the cause in a sentence and give the full corrected code.
- Never call input(): assign the values directly.
- Only a question that needs no computation (about Python itself, an explanation) is \
answered without code."""

FeedbackMarker = "Execution result:"
READ_HINT = (
    "If this answers the request, answer in words from it (no code). If the result is wrong "
    "or more is needed, give the code for that."
)
CLIP_OVER = 1000
CLIP_KEEP = 200
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_FENCE = re.compile(r"```([^\n`]*)\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3", "ipython", "ipython3"}


# ---- replies -----------------------------------------------------------------------------------
def extract_code(reply: str) -> str | None:
    """The reply's last fenced Python block (an unclosed last block counts), or None.

    Blocks tagged as Python win over untagged ones: models often show an example's output in
    an untagged block after the code."""
    tagged: list[str] = []
    untagged: list[str] = []
    for info, body in _FENCE.findall(reply):
        words = info.split()
        language = words[0].lower() if words else ""
        if language in _PYTHON_TAGS and body.strip():
            (tagged if language else untagged).append(body)
    blocks = tagged or untagged
    if not blocks:
        return None
    # A block indented inside a Markdown list keeps the list's indentation: remove it.
    return textwrap.dedent(blocks[-1]).rstrip() + "\n"


_OPEN_CODE = re.compile(
    r"^[ \t]*```[ \t]*(?:python3?|py3?|ipython3?)\b[^\n]*\n", re.MULTILINE | re.IGNORECASE
)
_CLOSE_FENCE = re.compile(r"^[ \t]*```[ \t]*$", re.MULTILINE)


def code_block_end(reply: str) -> int | None:
    """Where the reply's first complete ```python block ends (just past its closing fence),
    or None while there is none: the code runs as soon as its block closes, and what the
    model says about the result comes after it has read the result."""
    start = 0
    while (opening := _OPEN_CODE.search(reply, start)) is not None:
        # The closing fence must be a whole line: the line after it must have begun.
        closing = next(
            (c for c in _CLOSE_FENCE.finditer(reply, opening.end()) if c.end() < len(reply)),
            None,
        )
        if closing is None:
            return None
        if reply[opening.end() : closing.start()].strip():
            return closing.end()
        start = closing.end()  # an empty block: the code may be in the next one
    return None


def calls_input(code: str) -> bool:
    """Whether the code calls input() (nobody is there to answer it)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return re.search(r"(?<![\w.])input\s*\(", code) is not None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "input":
                return True
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "input"
                and isinstance(func.value, ast.Name)
                and func.value.id == "builtins"
            ):
                return True
    return False


# ---- feedback ----------------------------------------------------------------------------------
def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def clip(text: str, over: int = CLIP_OVER, keep: int = CLIP_KEEP) -> str:
    """Long text -> its head and tail with a marker, as the paper's demo does."""
    if len(text) <= over:
        return text
    omitted = len(text) - 2 * keep
    return f"{text[:keep]}\n... [{omitted} characters omitted] ...\n{text[-keep:]}"


def execution_feedback(outcome: ExecutionOutcome) -> str:
    """The user turn that tells the model what its code did."""
    output = clip(strip_ansi(outcome.output).rstrip())
    if outcome.status == "ok":
        if not output.strip():
            return (
                f"{FeedbackMarker} the code ran without errors but printed nothing. "
                "Print the result, or test it with assert, so that it can be checked."
            )
        return f"{FeedbackMarker}\n{output}\n\n{READ_HINT}"
    before = f"Output before it stopped:\n{output}\n" if output.strip() else ""
    if outcome.status == "timeout":
        limit = f" within {outcome.time_limit:g} seconds" if outcome.time_limit else ""
        return (
            f"{FeedbackMarker} the code did not finish{limit} and was interrupted.\n{before}"
            "Make it faster or do less work, and give the full corrected code."
        )
    if outcome.status == "cancelled":
        return (
            f"{FeedbackMarker} the run was interrupted (KeyboardInterrupt) before it "
            f"finished.\n{before}"
        ).rstrip()
    trace = clip(strip_ansi(outcome.traceback).strip())
    if not trace:
        trace = f"{outcome.ename}: {outcome.evalue}" if outcome.evalue else outcome.ename
    return (
        f"{FeedbackMarker} the code raised an error.\n{before}{trace}\n"
        "Fix the code and give the full corrected code in one ```python block."
    )


def fix_request(source: str, outcome: ExecutionOutcome) -> str:
    """The request that asks the model to repair a cell that failed."""
    trace = clip(strip_ansi(outcome.traceback).strip()) or outcome.summary()
    return (
        f"This cell failed:\n```python\n{source.rstrip()}\n```\n{trace}\n\n"
        "Find the cause and fix the cell. Give the full corrected cell in one ```python block."
    )


def same_code(a: str, b: str) -> bool:
    """Whether two pieces of code are the same but for trailing spaces and blank lines."""

    def lines(code: str) -> list[str]:
        return [line.rstrip() for line in code.strip("\n").splitlines() if line.strip()]

    return lines(a) == lines(b)


def repeat_feedback(where: str, outcome: ExecutionOutcome) -> str:
    """The user turn for code that repeats code which already failed (it is not run again)."""
    return (
        f"{FeedbackMarker} not run: this is the same code as {where}, which failed with "
        f"{outcome.summary()}. Running it again would fail the same way. Find what causes "
        "the error, change that part of the code, and give the full corrected code in one "
        "```python block."
    )


def repeat_success_feedback(where: str, fix: bool = False) -> str:
    """The user turn for a step that repeats code which already ran without errors."""
    then = (
        "Say in a sentence or two what was wrong with the cell and how the fix solves it, "
        "without a code block."
        if fix
        else "Answer the request in plain words from that result, or give the next step's "
        "code if more is needed."
    )
    return (
        f"{FeedbackMarker} not run: this is the same code as {where}, which already ran "
        f"without errors; its result is above. {then}"
    )


def input_feedback() -> str:
    return (
        f"{FeedbackMarker} the code was not run because it calls input(), and nobody can "
        "answer it here. Assign the values directly instead, and give the full code."
    )


# ---- context -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CellContext:
    source: str
    output: str = ""
    label: str = ""
    """How to name the cell to the model, e.g. "In [3]"."""
    active: bool = False
    kind: str = "code"


@dataclass(frozen=True)
class VariableInfo:
    name: str
    type: str
    summary: str = ""

    def line(self) -> str:
        return f"- {self.name}: {self.type}" + (f", {self.summary}" if self.summary else "")


@dataclass(frozen=True)
class NotebookContext:
    language: str = "python"
    cells: Sequence[CellContext] = ()
    variables: Sequence[VariableInfo] = ()
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PromptLimits:
    reply_tokens: int = 1024
    """Room kept free for the model's answer."""
    max_cells: int = 30
    """Cells considered at most (the active one and its nearest neighbours first)."""
    max_variables: int = 60
    cell_chars: int = 3000
    output_chars: int = 600
    history_share: float = 0.4
    variables_share: float = 0.15
    per_message_overhead: int = 8
    """Tokens the chat template adds around each message."""


class PromptTooLong(ValueError):
    """Even the system prompt and the request alone do not fit the model's window."""


Counter = Callable[[list[str]], list[int]]
"""Token counts of several texts at once (one tokenizer call, or one HTTP request)."""


def cell_text(cell: CellContext, limits: PromptLimits) -> str:
    label = cell.label or ("Markdown" if cell.kind == "markdown" else "Cell")
    marker = "  <- active cell" if cell.active else ""
    text = f"# {label}{marker}\n{_cut(cell.source.rstrip(), limits.cell_chars)}"
    output = strip_ansi(cell.output).strip()
    if output:
        text += f"\n# Output:\n{_cut(output, limits.output_chars)}"
    return text


def rank_cells(
    cells: Sequence[CellContext], max_cells: int, needs: Collection[str] = ()
) -> list[int]:
    """Indices of the most relevant cells: the active one, then those above it (nearest first),
    then those below it. Without an active cell, the last cells are the nearest.

    With ``needs`` (the names a failing cell reads), the cells that define them come right
    after the active one: for each name the nearest definition above the cell that needs it,
    then in turn what those definitions need (the root cause of an error often sits a few
    cells up). A name defined only below counts too: notebooks run out of order."""
    if not cells:
        return []
    active = next((i for i, c in enumerate(cells) if c.active), len(cells))
    order = [active] if active < len(cells) else []
    order += list(range(min(active, len(cells)) - 1, -1, -1))
    order += list(range(active + 1, len(cells)))
    if needs:
        first = order[:1] if active < len(cells) else []
        wanted = _definitions(cells, active, needs, max_cells - len(first))
        order = first + wanted + [i for i in order if i not in wanted and i not in first]
    return order[:max_cells]


SEARCH_CELLS = 100
"""How far from the cell that needs a name its definition is looked for, each way."""


def _definitions(
    cells: Sequence[CellContext], position: int, needs: Collection[str], limit: int
) -> list[int]:
    """The cells that define ``needs`` for a cell at ``position``, nearest first, followed
    transitively (breadth first) up to ``limit`` cells."""
    defines: dict[int, set[str]] = {}

    def defined_by(index: int) -> set[str]:
        if index not in defines:
            cell = cells[index]
            defines[index] = defined_names(cell.source) if cell.kind == "code" else set()
        return defines[index]

    found: list[int] = []
    seen_names: set[str] = set()
    queue: list[tuple[str, int]] = [(name, position) for name in sorted(needs)]
    while queue and len(found) < limit:
        name, before = queue.pop(0)
        if name in seen_names:
            continue
        seen_names.add(name)
        # The nearest SEARCH_CELLS on each side: a definition is rarely further away, and
        # parsing costs ~60 µs a cell.
        start = min(before, len(cells))
        above = range(start - 1, max(start - SEARCH_CELLS, 0) - 1, -1)
        below = range(start + 1, min(start + SEARCH_CELLS, len(cells)))
        index = next(
            (
                i
                for i in [*above, *below]
                # The substring test first: most cells never mention the name.
                if i != position and name in cells[i].source and name in defined_by(i)
            ),
            None,
        )
        if index is None or index in found:
            continue
        found.append(index)
        queue += [
            (n, index) for n in sorted(used_names(cells[index].source)) if n not in seen_names
        ]
    return found


# ---- which cells a failing cell depends on -------------------------------------------------------
_MAGIC_LINE = re.compile(r"^\s*(?:%|!).*$|^.*\?\s*$", re.MULTILINE)
_IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_]\w*")
_ASSIGNED = re.compile(
    r"^\s*(?:def|class)\s+([A-Za-z_]\w*)|^\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*(?:[-+*/%&|^@]|//|\*\*|<<|>>)?=(?!=)",
    re.MULTILINE,
)
_NOT_DEFINED = re.compile(r"name '([A-Za-z_]\w*)' is not defined")
_BUILTINS = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | {"display", "get_ipython"}


def _parse(source: str) -> ast.Module | None:
    """The cell as Python, with IPython's magic and shell lines blanked (they are not Python)."""
    if source.lstrip().startswith("%%"):
        return None  # a cell magic: its body is not Python in general
    try:
        return ast.parse(_MAGIC_LINE.sub("", source))
    except (SyntaxError, ValueError):
        return None


def defined_names(source: str) -> set[str]:
    """The global names a cell binds: assignments, imports, functions, classes, loop targets."""
    tree = _parse(source)
    if tree is None:
        # Unparseable: the plain `name = ...`, `def name`, `class name` lines still tell.
        found: set[str] = set()
        for match in _ASSIGNED.finditer(source):
            defined, assigned = match.groups()
            found.update([defined] if defined else (n.strip() for n in assigned.split(",")))
        return found
    names: set[str] = set()
    for node in _top_level(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name != "*":
                    names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.Global):
            names.update(node.names)
    return names


def used_names(source: str) -> set[str]:
    """The names a cell reads that are not builtins (whether or not it also binds them:
    `df = df.dropna()` needs the earlier `df`)."""
    tree = _parse(source)
    if tree is None:
        return set(_IDENTIFIER.findall(_MAGIC_LINE.sub("", source))) - _BUILTINS
    return {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    } - _BUILTINS


def _top_level(tree: ast.Module) -> Iterator[ast.AST]:
    """The nodes of a module outside function and class bodies (whose names are local), but
    with the names of the functions and classes themselves."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            # Decorators and defaults run at the top level; the body does not.
            stack.extend(node.decorator_list)
            continue
        if isinstance(
            node, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp
        ):
            continue
        stack.extend(ast.iter_child_nodes(node))


def failure_names(source: str, outcome: ExecutionOutcome | None = None) -> set[str]:
    """The names to look for in other cells when this cell failed: those it reads, and the one
    a NameError names (it may sit in a called function's body elsewhere)."""
    names = used_names(source)
    if outcome is not None:
        names.update(_NOT_DEFINED.findall(outcome.evalue))
    return names


def build_messages(
    request: str,
    context: NotebookContext,
    *,
    window: int,
    count: Counter,
    history: Sequence[Message] = (),
    limits: PromptLimits | None = None,
    system: str = SYSTEM_PROMPT,
    needs: Collection[str] = (),
) -> list[Message]:
    """The first turn's messages: system, earlier conversation, then context + request.

    Everything is measured with ``count`` and fitted into ``window`` minus the reply's room:
    the request always, then the most recent history, the variables, and the most relevant
    cells, each within its share (unused shares go to the cells).
    """
    limits = limits or PromptLimits()
    language = context.language or "python"
    system_text = f"{system}\nThe kernel's language: {language}."
    request_text = request.strip()
    cell_order = rank_cells(context.cells, limits.max_cells, needs)
    cell_texts = [cell_text(context.cells[i], limits) for i in cell_order]
    variable_lines = [v.line() for v in context.variables[: limits.max_variables]]
    history_texts = [m["content"] for m in history]

    headers = [
        "Variables in the kernel:\n",
        f"\n\nNotebook cells, top to bottom ({len(context.cells)} other cells not shown):\n",
        "\n\nRequest:\n",
    ]
    counts = count(
        [*headers, system_text, request_text, *history_texts, *variable_lines, *cell_texts]
    )
    header_tokens = sum(counts[: len(headers)])
    counts = counts[len(headers) :]
    overhead = limits.per_message_overhead
    system_tokens, request_tokens = counts[0], counts[1]
    rest = counts[2:]
    history_tokens = rest[: len(history_texts)]
    rest = rest[len(history_texts) :]
    variable_tokens = rest[: len(variable_lines)]
    cell_tokens = rest[len(variable_lines) :]

    # The margin covers tokens that merge differently across the joins of the parts.
    budget = (
        window
        - limits.reply_tokens
        - system_tokens
        - request_tokens
        - header_tokens
        - 3 * overhead
        - 8
    )
    if budget < 0:
        raise PromptTooLong(
            f"the request alone needs {system_tokens + request_tokens} tokens; with "
            f"{limits.reply_tokens} kept for the reply it does not fit the model's {window}"
        )

    # History: the newest messages that fit their share, kept in order.
    history_budget = int(budget * limits.history_share)
    kept_history: list[Message] = []
    spent = 0
    for message, tokens in zip(reversed(history), reversed(history_tokens), strict=True):
        if spent + tokens + overhead > history_budget:
            break
        kept_history.insert(0, dict(message))
        spent += tokens + overhead
    # A history must not start with the model's turn.
    while kept_history and kept_history[0]["role"] == "assistant":
        spent -= history_tokens[len(history) - len(kept_history)] + overhead
        kept_history.pop(0)
    budget -= spent

    variables_budget = int(budget * limits.variables_share)
    kept_variables: list[str] = []
    spent = 0
    for line, tokens in zip(variable_lines, variable_tokens, strict=True):
        if spent + tokens + 1 > variables_budget:
            break
        kept_variables.append(line)
        spent += tokens + 1
    budget -= spent

    kept_cells: dict[int, str] = {}
    for index, text, tokens in zip(cell_order, cell_texts, cell_tokens, strict=True):
        if tokens + 2 > budget:
            continue  # a smaller, less relevant cell may still fit
        kept_cells[index] = text
        budget -= tokens + 2

    parts: list[str] = []
    if kept_variables:
        parts.append("Variables in the kernel:\n" + "\n".join(kept_variables))
    if kept_cells:
        shown = [kept_cells[i] for i in sorted(kept_cells)]  # notebook order reads naturally
        omitted = len(context.cells) - len(kept_cells)
        note = f" ({omitted} other cells not shown)" if omitted else ""
        parts.append(f"Notebook cells, top to bottom{note}:\n" + "\n\n".join(shown))
    prompt = request_text
    if parts:
        prompt = "\n\n".join(parts) + "\n\nRequest:\n" + request_text
    if kept_history and kept_history[-1]["role"] == "user":
        # The last turn ended with an execution result: one user message, not two in a row
        # (some chat templates insist that roles alternate).
        prompt = kept_history.pop()["content"] + "\n\n" + prompt
    return [
        {"role": "system", "content": system_text},
        *kept_history,
        {"role": "user", "content": prompt},
    ]


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    keep = limit // 2
    return f"{text[:keep]}\n... [{len(text) - 2 * keep} characters omitted] ...\n{text[-keep:]}"


def estimate_counter(texts: list[str]) -> list[int]:
    """A tokenizer-free upper estimate (~3.2 characters a token), for when none is at hand."""
    return [int(len(t) / 3.2) + 1 for t in texts]
