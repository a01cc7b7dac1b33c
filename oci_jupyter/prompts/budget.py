"""Fitting a request into the model's window: every part measured with the engine's tokenizer
(a ``count`` callback), the request always kept, then the newest history, the variables and
the most relevant cells, each within its share."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from ..types import Message
from .context import CellContext, NotebookContext, rank_cells
from .feedback import strip_ansi
from .files import files_section
from .system import REQUEST_HINT, SYSTEM_PROMPT


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
    hint: str = REQUEST_HINT,
    files: Sequence[str] = (),
) -> list[Message]:
    """The first turn's messages: system, earlier conversation, then context + request.

    Everything is measured with ``count`` and fitted into ``window`` minus the reply's room:
    the request always, then the most recent history, the variables, the previews of the
    data files the request names (``files``, :mod:`.files`) and the most relevant cells, each
    within its share (unused shares go to the cells).
    """
    limits = limits or PromptLimits()
    language = context.language or "python"
    system_text = f"{system}\nThe kernel's language: {language}."
    request_text = request.strip() + (f"\n\n{hint}" if hint else "")
    cell_order = rank_cells(context.cells, limits.max_cells, needs)
    cell_texts = [cell_text(context.cells[i], limits) for i in cell_order]
    variable_lines = [v.line() for v in context.variables[: limits.max_variables]]
    history_texts = [m["content"] for m in history]

    headers = [
        "Variables in the kernel:\n",
        f"\n\nNotebook cells, top to bottom ({len(context.cells)} other cells not shown):\n",
        "\n\nRequest:\n",
        *([files_section([])] if files else []),
    ]
    counts = count(
        [
            *headers,
            system_text,
            request_text,
            *history_texts,
            *variable_lines,
            *files,
            *cell_texts,
        ]
    )
    header_tokens = sum(counts[: len(headers)])
    counts = counts[len(headers) :]
    overhead = limits.per_message_overhead
    system_tokens, request_tokens = counts[0], counts[1]
    rest = counts[2:]
    history_tokens = rest[: len(history_texts)]
    rest = rest[len(history_texts) :]
    variable_tokens = rest[: len(variable_lines)]
    rest = rest[len(variable_lines) :]
    file_tokens = rest[: len(files)]
    cell_tokens = rest[len(files) :]

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

    # The named files before the cells: what the request is about comes first.
    kept_files: list[str] = []
    for preview, tokens in zip(files, file_tokens, strict=True):
        if tokens + 2 <= budget // 2:
            kept_files.append(preview)
            budget -= tokens + 2

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
    if kept_files:
        # After the cells, right before the request that names them: the prompt up to here
        # is the same as the one a background prefill read (it knows no request yet).
        parts.append(files_section(kept_files))
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
