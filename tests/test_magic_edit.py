"""``%oci edit`` in a real ipykernel, talking to a real Jupyter server: a scripted engine
(the diff, the run, refinement, --no-exec, bad cell numbers) and one instruction to the real
bundled model whose result the test can call."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from oci_jupyter.magic_edit import diff_text, parse_edit

from .kernels import CellRun, Kernel, ipykernel
from .magic_kernel import REGISTRY, Script, in_order, shown
from .servers import jupyter_server

pytestmark = pytest.mark.usefixtures("fresh_conversation")

CELL = "values = [3, 4, 5]\nprint(sum(values))"
TOTAL = "def total(values):\n    return sum(values)\n\nprint(total(values))\n"
SUMMARY = "Wrapped the sum in a function `total` that takes the list."


def number(run: CellRun) -> int:
    """The cell's execution count: its In [N]."""
    return int(run.reply["content"]["execution_count"])


def offered(run: CellRun) -> list[str]:
    """The code the magic offered as the next cell."""
    payload = run.reply["content"].get("payload", [])
    return [p["text"] for p in payload if p["source"] == "set_next_input"]


def test_the_diff_shows_the_change_runs_and_the_summary_comes_last(
    kernel: Kernel, script: Script
) -> None:
    cell = kernel.run(CELL)
    assert cell.text.strip() == "12"
    script.set([f"Here it is:\n```python\n{TOTAL}```", SUMMARY])
    run = kernel.run(f"%oci edit {number(cell)} make this a function named total")
    assert run.status == "ok"
    text = shown(run)
    in_order(
        text,
        f"**oci: changing** In [{number(cell)}]",
        f"--- In [{number(cell)}]",
        "-values = [3, 4, 5]",
        "+def total(values):",
        "12\n",  # the changed code ran, in the user's namespace
        "✅ **oci: changed after 1 step, 2 replies.**",
        SUMMARY,
    )
    assert run.final_markdown[-1] == SUMMARY  # the one-line summary, last
    assert "The changed code is in a new cell below." in run.final_markdown[-2]
    assert offered(run) == [TOTAL]
    assert kernel.value("total([1, 2, 3])") == "6"
    request = script.prompts[0][-1]["content"]
    assert "Change this cell as the user asks: make this a function named total" in request
    assert f"```python\n{CELL}\n```" in request
    after = script.prompts[1][-1]["content"]
    assert after.startswith("Execution result: the changed cell ran without errors; its result:")
    assert "Say in one sentence what you changed" in after
    status = ast.literal_eval(kernel.value(f"{REGISTRY}.last_result.status"))
    assert status == "success"


def test_a_failing_change_is_refined(kernel: Kernel, script: Script) -> None:
    cell = kernel.run("prices = [2, 3]\nprint(prices)")
    broken = "```python\ndoubled = [p * 2 for p in prices]\nprint(doubld)\n```"
    fixed = "```python\ndoubled = [p * 2 for p in prices]\nprint(doubled)\n```"
    script.set([broken, fixed, "Doubled each price."])
    run = kernel.run(f"%oci edit {number(cell)} double every price")
    text = shown(run)
    in_order(
        text,
        "+print(doubld)",
        "NameError",
        "**oci · attempt 2**",
        "+print(doubled)",
        "[4, 6]",
        "✅ **oci: changed after 1 step, 3 replies.**",
        "Doubled each price.",
    )
    assert kernel.value("doubled") == "[4, 6]"
    assert "NameError: name 'doubld' is not defined" in script.prompts[1][-1]["content"]
    assert offered(run) == ["doubled = [p * 2 for p in prices]\nprint(doubled)\n"]


def test_no_exec_shows_the_diff_and_runs_nothing(kernel: Kernel, script: Script) -> None:
    kernel.run("width = 3\nprint(width)")
    script.set(["```python\nnever_run = 3 * 2\nprint(never_run)\n```"])
    run = kernel.run("%oci edit --no-exec double the width")  # the last cell run
    in_order(shown(run), "-width = 3", "+never_run = 3 * 2")
    assert run.final_markdown[-1].startswith("📝 **oci: change written, not run (--no-exec).**")
    assert kernel.value("'never_run' in globals()") == "False"
    assert len(script.prompts) == 1
    assert offered(run) == ["never_run = 3 * 2\nprint(never_run)\n"]


def test_the_cells_value_and_last_error_reach_the_model(kernel: Kernel, script: Script) -> None:
    valued = kernel.run("21 * 2")
    failed = kernel.run("ratio = total_count / 4")
    assert failed.status == "error"
    script.set(["No change needed."])
    kernel.run("%oci edit use 8 as the total count")  # the last cell: the failing one
    request = script.prompts[0][-1]["content"]
    assert "```python\nratio = total_count / 4\n```" in request
    assert "Its last run failed:" in request
    assert "NameError: name 'total_count' is not defined" in request
    script.set(["No change needed."])
    run = kernel.run(f"%oci edit {number(valued)} show it as text")
    assert "Its last output:\n42" in script.prompts[0][-1]["content"]
    assert run.final_markdown[-1] == "No change needed."  # an edit without code: failed
    assert "❌ **oci: failed" in run.final_markdown[-2]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%oci edit 999 make it faster", "there is no In [999] to change"),
        ("%oci edit 0 make it faster", "there is no In [0] to change"),
        ("%oci edit", "say how to change the cell"),
        ("%oci edit 1", "say how to change the cell"),
        ("%oci edit 1 x --attempts 0", "--attempts must be at least 1"),
    ],
)
def test_bad_edits_get_a_clear_message(
    kernel: Kernel, script: Script, line: str, message: str
) -> None:
    run = kernel.run(line)
    assert run.status == "ok"  # a message, not a traceback
    assert message in run.text
    assert script.prompts == []


def test_an_oci_cell_is_not_edited(kernel: Kernel, script: Script) -> None:
    magic = kernel.run("%oci reset")
    run = kernel.run(f"%oci edit {number(magic)} make it faster")
    assert f"In [{number(magic)}] is an %oci cell: give the number of a code cell" in run.text
    assert script.prompts == []


def test_the_help_says_what_an_edit_sees(kernel: Kernel) -> None:
    run = kernel.run("%oci?")
    help_text = run.text + str(run.reply["content"])
    assert "%oci edit [N] <instruction>" in help_text
    assert "Out[N]" in help_text


def test_parsing_and_the_diff() -> None:
    number, words, options = parse_edit("3 make the list's sum a function --no-exec")
    assert (number, words, options.no_exec) == (3, "make the list's sum a function", True)
    assert parse_edit("use a log scale")[:2] == (None, "use a log scale")
    assert diff_text("a = 1\n", "a = 1", "In [2]") == ""
    assert diff_text("a = 1", "a = 2", "In [2]").splitlines() == [
        "--- In [2]",
        "+++ In [2], changed",
        "@@ -1 +1 @@",
        "-a = 1",
        "+a = 2",
    ]


@pytest.mark.model
def test_real_model_makes_the_cell_a_function(tmp_path: Path, bundled_model: Path) -> None:
    oci: dict[str, Any] = {"engine": "llamacpp", "n_ctx": 4096, "hub_download": False}
    with jupyter_server(tmp_path, oci) as server, ipykernel(server.kernel_env()) as real:
        real.run("%load_ext oci_jupyter")
        cell = real.run(CELL)
        assert cell.text.strip() == "12"
        run = real.run(
            f"%oci edit {number(cell)} --temperature 0 make this a function named total "
            "that takes the list and returns the sum"
        )
        assert run.status == "ok"
        status = ast.literal_eval(real.value(f"{REGISTRY}.last_result.status"))
        assert status == "success", run.text
        assert "+def total(" in shown(run)  # the diff
        assert real.value("total([1, 2, 3]) == 6") == "True", run.text
        (code,) = offered(run)
        assert "def total(" in code
        answer = ast.literal_eval(real.value(f"{REGISTRY}.last_result.answer"))
        assert answer.strip(), run.text
        assert run.final_markdown[-1].strip() == answer.strip()  # the summary, last
