"""Ghost text's prompt: the middle of the notebook, fitted to its token shares."""

from __future__ import annotations

import itertools

from oci_jupyter.completions.notebook import (
    CODE_CELL,
    FimLimits,
    build_notebook_prompt,
    cell_block,
)
from oci_jupyter.completions.schema import NotebookCell, NotebookContext, NotebookVariable


class WordCounter:
    """Counts words as tokens and remembers each call (one batch per prompt)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> list[int]:
        self.calls.append(list(texts))
        return [len(text.split()) for text in texts]


def code(source: str, output: str = "") -> NotebookCell:
    return NotebookCell(source=source, output=output)


def notebook(before=(), after=(), variables=()) -> NotebookContext:  # type: ignore[no-untyped-def]
    return NotebookContext(
        cells_before=list(before), cells_after=list(after), variables=list(variables)
    )


def build(before: str, after: str, context: NotebookContext, **limits: int):  # type: ignore[no-untyped-def]
    counter = WordCounter()
    built = build_notebook_prompt(before, after, context, count=counter, limits=FimLimits(**limits))
    return built, counter


def test_cells_above_are_the_prefix_and_cells_below_the_suffix() -> None:
    context = notebook(
        before=[code("import pandas as pd"), code("df = pd.read_csv('sales.csv')")],
        after=[code("df.plot()")],
    )
    built, _ = build("total = df.", "\nprint(total)", context)
    assert built.prompt.prefix == (
        "# %%\nimport pandas as pd\n\n# %%\ndf = pd.read_csv('sales.csv')\n\n# %%\ntotal = df."
    )
    assert built.prompt.suffix == "\nprint(total)\n\n# %%\ndf.plot()\n"
    assert (built.cells_before, built.cells_after) == (2, 1)


def test_everything_is_counted_in_one_batch() -> None:
    context = notebook(before=[code(f"x{i} = {i}") for i in range(20)], after=[code("y = 1")])
    _, counter = build("z = ", "", context)
    assert len(counter.calls) == 1


def test_markdown_is_a_comment_raw_cells_are_left_out() -> None:
    context = notebook(
        before=[
            NotebookCell(source="# Sales\nBy region.", kind="markdown"),
            NotebookCell(source="%%raw text", kind="raw"),
        ]
    )
    built, _ = build("x = ", "", context)
    assert built.prompt.prefix == "# %% [markdown]\n# # Sales\n# By region.\n\n# %%\nx = "


def test_short_outputs_follow_their_cell_long_ones_do_not() -> None:
    short = code("df.columns", output="Index(['region', 'amount'])")
    long = code("print(df)", output="row\n" * 200)
    text = cell_block(short, FimLimits()) + cell_block(long, FimLimits())
    assert "# Out:\n# Index(['region', 'amount'])\n" in text
    assert "row" not in text


def test_variables_come_right_before_the_edited_cell() -> None:
    # After the cells above: running a cell changes them, and the cells above stay a prefix
    # the engine has read already.
    context = notebook(
        before=[code("import numpy as np")],
        variables=[
            NotebookVariable(name="df", type="DataFrame", summary="100 rows x 2 columns: a, b"),
            NotebookVariable(name="n", type="int"),
        ],
    )
    built, _ = build("df.", "", context)
    assert built.prompt.prefix == (
        "# %%\nimport numpy as np\n\n"
        "# Variables in the kernel:\n# - df: DataFrame, 100 rows x 2 columns: a, b\n# - n: int\n\n"
        "# %%\ndf."
    )
    assert built.variables == 2


def test_variables_within_their_share() -> None:
    many = [NotebookVariable(name=f"v{i}", type="int", summary="a b c d e") for i in range(50)]
    built, _ = build("x", "", notebook(variables=many), variables_tokens=40)
    # The header (5 words) and three variables (9 words each: "# - vN: int, a b c d e").
    assert built.variables == 3
    assert "v2" in built.prompt.prefix
    assert "v3" not in built.prompt.prefix


def test_the_nearest_cells_above_fill_their_share_without_gaps() -> None:
    cells = [code(f"step_{i} = {i}") for i in range(30)]  # 5 words a block: "# %% step_i = i"
    built, _ = build("x = ", "", notebook(before=cells), before_tokens=22)
    assert built.cells_before == 4
    kept = built.prompt.prefix.split(CODE_CELL)[1:-1]
    assert [block.split(" =")[0] for block in kept] == ["step_26", "step_27", "step_28", "step_29"]


def test_the_suffix_keeps_few_tokens() -> None:
    # The suffix follows the cursor in the model's prompt: it is read again at every keystroke.
    below = [code("a = 1"), code("b = 2"), code("c = 3 + 4 + 5 + 6")]
    # 3 words of the cell's own rest, then whole cells of 5 words while they fit.
    built, _ = build("x", "\ny = 2", notebook(after=below), after_tokens=13)
    assert built.prompt.suffix == "\ny = 2\n\n# %%\na = 1\n\n# %%\nb = 2\n"
    assert built.cells_after == 2


def test_typing_changes_the_prompt_only_at_the_cursor() -> None:
    context = notebook(
        before=[code("import math"), code("values = [1, 2, 3]")],
        after=[code("print(result)")],
        variables=[NotebookVariable(name="values", type="list")],
    )
    line = "result = sum(math.sqrt(v) for v in values)"
    prompts = [build(line[:i], "\n", context)[0].prompt for i in range(1, len(line) + 1)]
    for before, after in itertools.pairwise(prompts):
        assert after.prefix.startswith(before.prefix)
        assert after.suffix == before.suffix


def test_a_long_cell_is_cut_on_a_grid_of_lines_from_its_top() -> None:
    # 40 lines of 3 words; 30 words allowed: whole blocks of 8 lines (24 words) only, so the
    # cut moves once every 8 lines typed, not at every keystroke.
    lines = [f"v{i} = {i}\n" for i in range(40)]
    cuts = set()
    for typed in range(20, 41):
        built, _ = build("".join(lines[:typed]), "", notebook(), cell_tokens=30)
        head = built.prompt.prefix.removeprefix(CODE_CELL)
        assert "".join(lines[:typed]).endswith(head)
        cuts.add(typed - head.count("\n"))
    assert cuts <= {16, 24, 32, 40}
    assert len(cuts) <= 3


def test_an_empty_notebook_is_just_the_cell() -> None:
    built, _ = build("print(", ")", notebook())
    assert built.prompt.prefix == CODE_CELL + "print("
    assert built.prompt.suffix == ")"
