"""A run that printed nothing shows the model the values its code assigned: the names (from
the code), their short reprs (from the kernel), the feedback and the loop's answer checks."""

from __future__ import annotations

from typing import Any

from oci_jupyter.loop import Budgets, Generate, RefinementLoop
from oci_jupyter.prompts import READ_HINT, execution_feedback
from oci_jupyter.prompts.values import (
    MAX_NAMES,
    MAX_REPR,
    assigned_names,
    lookup_values,
    short_repr,
    values_text,
)
from oci_jupyter.types import ExecutionOutcome

LARGEST = """\
sum_north = sum(north)
sum_east = sum(east)
# which one
if sum_north > sum_east:
    result = "north"
else:
    result = "east"
"""


def test_assigned_names_in_order_with_branches_loops_and_with() -> None:
    code = (
        "import numpy as np\nfrom math import pi\n"
        "def helper(x):\n    inner = x\n    return inner\n"
        "class Box:\n    size = 3\n"
        "total, (a, b) = 1, (2, 3)\ncount += 1\nlabel: str = 'x'\n"
        "for item in range(3):\n    last = item\n"
        "try:\n    risky = 1\nexcept ValueError:\n    fallback = 2\nfinally:\n    cleanup = 3\n"
        "with open('f') as handle:\n    text = handle.read()\n"
        "_private = 1\nprint(total)\n"
    )
    assert (
        assigned_names(code)
        == [
            "total",
            "a",
            "b",
            "count",
            "label",
            "item",
            "last",
            "risky",
            "fallback",
            "cleanup",
            "handle",
            "text",
        ][:MAX_NAMES]
    )
    assert assigned_names(LARGEST) == ["sum_north", "sum_east", "result"]


def test_no_names_for_definitions_only_or_broken_code() -> None:
    assert assigned_names("import os\ndef f():\n    y = 1\n") == []
    assert assigned_names("x = (") == []


def test_short_repr_cuts_long_values_and_survives_a_broken_repr() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert short_repr("east") == "'east'"
    assert short_repr(list(range(100))).endswith("...]")
    assert len(short_repr("x" * 10_000)) <= MAX_REPR + 5
    assert short_repr(Broken()).startswith("<Broken")  # no exception reaches the loop


def test_lookup_values_skips_names_the_namespace_lacks() -> None:
    namespace: dict[str, Any] = {"result": "east", "sum_east": 69}
    assert lookup_values(namespace, ["sum_east", "missing", "result"]) == (
        ("sum_east", "69"),
        ("result", "'east'"),
    )


def test_values_text_is_bounded() -> None:
    many = [(f"name{i}", "v" * 150) for i in range(40)]
    text = values_text(many)
    assert len(text) <= 1200
    assert text.endswith("...")
    assert text.splitlines()[0] == f"name0 = {'v' * 150}"


def test_feedback_shows_the_values_of_a_silent_run() -> None:
    silent = ExecutionOutcome("ok", values=(("sum_east", "69"), ("result", "'east'")))
    feedback = execution_feedback(silent)
    assert "printed nothing" in feedback
    assert "sum_east = 69\nresult = 'east'" in feedback
    assert READ_HINT in feedback
    # Without values: the hint to print, as before.
    plain = execution_feedback(ExecutionOutcome("ok"))
    assert "Print the result" in plain
    assert "assigned" not in plain
    # Printed output wins: the values are only for runs that printed nothing.
    printed = execution_feedback(ExecutionOutcome("ok", output="69\n", values=silent.values))
    assert "sum_east" not in printed


def _answer_after(outcome: ExecutionOutcome, answer: str) -> Any:
    loop = RefinementLoop(
        [{"role": "system", "content": "s"}, {"role": "user", "content": "which list?"}],
        Budgets(attempts=3, steps=3, replies=6),
        mode="chat",
        read_results=True,
    )
    loop.start()
    loop.on_reply(f"```python\n{LARGEST}```")
    read = loop.on_outcome(outcome)
    assert isinstance(read, Generate)
    return read, loop.on_reply(answer)


def test_an_answer_read_off_the_values_stands() -> None:
    silent = ExecutionOutcome("ok", values=(("sum_east", "69"), ("result", "'east'")))
    read, result = _answer_after(silent, "The east list has the largest sum, 69.")
    assert "result = 'east'" in read.messages[-1]["content"]
    assert result.status == "success"
    assert result.answer == "The east list has the largest sum, 69."


def test_a_number_the_values_do_not_show_is_still_checked() -> None:
    silent = ExecutionOutcome("ok", values=(("result", "'east'"),))
    _, again = _answer_after(silent, "The east list sums to 71.")
    assert isinstance(again, Generate)
    assert "71" in again.messages[-1]["content"]


def test_without_values_a_value_stated_after_a_silent_run_is_sent_back() -> None:
    _, again = _answer_after(ExecutionOutcome("ok"), 'The result is "south".')
    assert isinstance(again, Generate)
    assert "printed nothing" in again.messages[-1]["content"]
