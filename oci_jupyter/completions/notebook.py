"""Ghost text's prompt: the middle of the *notebook*, not of one cell.

The notebook becomes one Python file in the percent format that code models have read a lot
of (``# %%`` before each code cell, markdown cells as comments): the cells above are the
prefix, then the kernel's variables as a short comment, then the edited cell up to the
cursor; the rest of the cell and the cells below are the suffix. Short text outputs follow
their cell as ``# Out:`` comments (a ``df.head()`` shows the columns the next line uses).

Everything is measured with the engine's tokenizer in one batched call (``count``, as in
:mod:`oci_jupyter.prompts.budget`) and fitted to a small budget, each part within its own
share. The shares are fixed, and the edited cell is cut only on a grid of lines anchored at
its top, so that while a person types the prompt changes only at the cursor: the engine
reuses everything before it (llama.cpp's prefix cache) and reads a handful of tokens per
keystroke.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..engine.fim import FimPrompt
from ..prompts.budget import Counter
from ..prompts.context import VariableInfo
from ..prompts.feedback import strip_ansi
from .schema import NotebookCell, NotebookContext

CODE_CELL = "# %%\n"
MARKDOWN_CELL = "# %% [markdown]\n"
VARIABLES_HEADER = "# Variables in the kernel:\n"


@dataclass(frozen=True)
class FimLimits:
    """Token shares of the prompt (fixed, so that typing does not move what is kept)."""

    before_tokens: int = 512
    """The cells above the edited one."""
    cell_tokens: int = 256
    """The edited cell up to the cursor."""
    after_tokens: int = 24
    """The rest of the edited cell and the cells below. The model reads its suffix after
    the prefix, so every keystroke reads all of it again: each of these tokens costs every
    keystroke ~6-10 ms on a 2-core CPU (benchmarks/inline_completion_speed.py). 24 keeps
    the line after the cursor and the start of the next cell."""
    variables_tokens: int = 96
    max_variables: int = 30
    output_chars: int = 300
    """Outputs up to this long are shown; longer ones are data, not a hint."""
    cell_chars: int = 1500
    """A cell above longer than this is shown by its last lines."""
    grid_lines: int = 8
    """The edited cell is cut in blocks of this many lines, counted from its top."""

    @property
    def total(self) -> int:
        return self.before_tokens + self.cell_tokens + self.after_tokens + self.variables_tokens


@dataclass(frozen=True)
class NotebookPrompt:
    prompt: FimPrompt
    cells_before: int
    """Cells above the edited one in the prompt (the nearest ones)."""
    cells_after: int
    variables: int
    tokens: int
    """The prompt's tokens as counted part by part (the markers not included)."""


def cell_block(cell: NotebookCell, limits: FimLimits) -> str:
    """A cell as the percent format writes it ("" for raw cells)."""
    source = strip_ansi(cell.source).rstrip()
    if cell.kind == "raw":
        return ""
    if cell.kind == "markdown":
        return MARKDOWN_CELL + _commented(source)
    if len(source) > limits.cell_chars:
        source = _last_lines(source, limits.cell_chars)
    block = CODE_CELL + (source + "\n" if source else "")
    output = strip_ansi(cell.output).strip()
    if output and len(output) <= limits.output_chars:
        block += "# Out:\n" + _commented(output)
    return block


def variables_block(variables: Sequence[VariableInfo]) -> list[str]:
    """The variables as comment lines (the header is added when any is kept)."""
    return [f"# {_one_line(v.line())[:200]}\n" for v in variables]


def build_notebook_prompt(
    before: str,
    after: str,
    notebook: NotebookContext,
    *,
    count: Counter,
    limits: FimLimits | None = None,
) -> NotebookPrompt:
    """The infilling prompt for a cursor in a notebook cell: ``before`` and ``after`` are the
    edited cell's text on either side of the cursor."""
    limits = limits or FimLimits()
    above = [block for cell in notebook.cells_before if (block := cell_block(cell, limits))]
    below = [block for cell in notebook.cells_after if (block := cell_block(cell, limits))]
    variables = variables_block(
        [VariableInfo(v.name, v.type, v.summary) for v in notebook.variables][
            : limits.max_variables
        ]
    )
    head_chunks = _grid(before, limits.grid_lines)
    tail_chunks = _grid(after, limits.grid_lines)
    texts = [VARIABLES_HEADER, *above, *variables, *head_chunks, *tail_chunks, *below]
    counts = iter(count(texts))
    header_tokens = next(counts)
    above_tokens = [next(counts) for _ in above]
    variable_tokens = [next(counts) for _ in variables]
    head_tokens = [next(counts) for _ in head_chunks]
    tail_tokens = [next(counts) for _ in tail_chunks]
    below_tokens = [next(counts) for _ in below]

    # The edited cell up to the cursor: the block with the cursor always, then whole blocks
    # above it while they fit (a block never moves as the person types below it).
    head, head_spent = _keep_last(head_chunks, head_tokens, limits.cell_tokens)
    tail, tail_spent = _keep_first(tail_chunks, tail_tokens, limits.after_tokens)
    kept_above, above_spent = _nearest(above[::-1], above_tokens[::-1], limits.before_tokens)
    kept_below, below_spent = _nearest(below, below_tokens, limits.after_tokens - tail_spent)
    kept_variables, variables_spent = _nearest(
        variables, variable_tokens, limits.variables_tokens - header_tokens
    )

    prefix = "\n".join(kept_above[::-1])
    if prefix:
        prefix += "\n"
    if kept_variables:
        prefix += VARIABLES_HEADER + "".join(kept_variables) + "\n"
        variables_spent += header_tokens
    prefix += CODE_CELL + head
    suffix = tail
    if kept_below:
        suffix += ("\n" if suffix.endswith("\n") else "\n\n") + "\n".join(kept_below)
    return NotebookPrompt(
        FimPrompt(prefix, suffix),
        cells_before=len(kept_above),
        cells_after=len(kept_below),
        variables=len(kept_variables),
        tokens=head_spent + tail_spent + above_spent + below_spent + variables_spent,
    )


def _grid(text: str, size: int) -> list[str]:
    """``text`` in blocks of ``size`` lines, counted from its start."""
    lines = text.splitlines(keepends=True)
    return ["".join(lines[i : i + size]) for i in range(0, len(lines), size)]


def _keep_last(chunks: list[str], tokens: list[int], budget: int) -> tuple[str, int]:
    """The last chunk (its end, if it alone is over budget) and the chunks before it that fit."""
    if not chunks:
        return "", 0
    kept = [chunks[-1]]
    spent = tokens[-1]
    if spent > budget:  # one block of lines over the whole share: keep its end
        return _cut_start(chunks[-1], budget * 3), budget
    for chunk, cost in zip(reversed(chunks[:-1]), reversed(tokens[:-1]), strict=True):
        if spent + cost > budget:
            break
        kept.insert(0, chunk)
        spent += cost
    return "".join(kept), spent


def _keep_first(chunks: list[str], tokens: list[int], budget: int) -> tuple[str, int]:
    """The first chunk (its start, if it alone is over budget) and the chunks after it that
    fit."""
    if not chunks:
        return "", 0
    if tokens[0] > budget:
        return chunks[0][: budget * 3], budget
    kept, spent = _nearest(chunks, tokens, budget)
    return "".join(kept), spent


def _nearest(texts: list[str], tokens: list[int], budget: int) -> tuple[list[str], int]:
    """The texts from the first on while they fit (the nearest first; no gaps)."""
    kept: list[str] = []
    spent = 0
    for text, cost in zip(texts, tokens, strict=True):
        if spent + cost > budget:
            break
        kept.append(text)
        spent += cost
    return kept, spent


def _commented(text: str) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in text.splitlines())


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _last_lines(text: str, chars: int) -> str:
    """The last lines of ``text`` within ``chars`` characters, after a marker."""
    tail = text[-chars:]
    newline = tail.find("\n")
    if 0 <= newline < len(tail) - 1:
        tail = tail[newline + 1 :]
    return f"# ... ({len(text) - len(tail)} characters above)\n{tail}"


def _cut_start(text: str, chars: int) -> str:
    return text[-chars:] if len(text) > chars else text
