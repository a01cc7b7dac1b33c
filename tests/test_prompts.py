"""What the model reads: code extraction, execution feedback, and fitting a notebook's context
into the model's window with a given token counter (pure functions, no model needed)."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

import pytest

from oci_jupyter.engine import Message
from oci_jupyter.loop import ExecutionOutcome
from oci_jupyter.prompts import (
    CLIP_KEEP,
    CLIP_OVER,
    READ_HINT,
    REQUEST_HINT,
    SYSTEM_PROMPT,
    CellContext,
    Counter,
    FeedbackMarker,
    NotebookContext,
    PromptLimits,
    PromptTooLong,
    VariableInfo,
    build_messages,
    calls_input,
    cell_text,
    clip,
    defined_names,
    estimate_counter,
    execution_feedback,
    extract_code,
    failure_names,
    fix_request,
    input_feedback,
    rank_cells,
    repeat_feedback,
    same_code,
    strip_ansi,
    used_names,
)


# ---- counters ----------------------------------------------------------------------------------
def word_counter(texts: list[str]) -> list[int]:
    """One token a whitespace-separated word: a tokenizer far cheaper than characters."""
    return [len(text.split()) for text in texts]


def piece_counter(texts: list[str]) -> list[int]:
    """Words and each punctuation mark: closer to a BPE tokenizer on code."""
    return [len(re.findall(r"\w+|[^\w\s]", text)) for text in texts]


def char_counter(texts: list[str]) -> list[int]:
    """One token a character, as byte-level tokenizers and dense scripts (CJK) come close to."""
    return [len(text) for text in texts]


def prompt_tokens(messages: Sequence[Message], count: Counter, limits: PromptLimits) -> int:
    """The prompt's size measured as the model would: every message plus the template's
    per-message overhead."""
    return sum(count([m["content"] for m in messages])) + limits.per_message_overhead * len(
        messages
    )


def shown_cells(messages: Sequence[Message]) -> list[int]:
    """Indices of the cells shown in the prompt, in the order they appear (labels "In [i]")."""
    return [int(i) for i in re.findall(r"^# In \[(\d+)\]", messages[-1]["content"], re.M)]


def shown_variables(messages: Sequence[Message]) -> list[str]:
    return re.findall(r"^- (v\d+):", messages[-1]["content"], re.M)


def notebook(sizes: Sequence[int], active: int | None = None) -> NotebookContext:
    cells = [
        CellContext(
            source=f"cell_{i} = {i}\n" + "word " * size,
            label=f"In [{i}]",
            active=i == active,
        )
        for i, size in enumerate(sizes)
    ]
    return NotebookContext(cells=cells)


# ---- extract_code ------------------------------------------------------------------------------
@pytest.mark.parametrize("tag", ["python", "py", "", "Python", "python3", "ipython", "py "])
def test_extract_code_accepts_python_tags(tag: str) -> None:
    assert extract_code(f"Code:\n```{tag}\nprint(1)\n```\nDone.") == "print(1)\n"


@pytest.mark.parametrize("tag", ["bash", "sh", "text", "json", "console", "output"])
def test_extract_code_ignores_other_languages(tag: str) -> None:
    assert extract_code(f"Run:\n```{tag}\nls -l\n```\n") is None


def test_extract_code_takes_the_last_python_block() -> None:
    reply = (
        "```python\nfirst = 1\n```\ntext\n```python\nsecond = 2\n```\n"
        "```bash\npip install pandas\n```\n```text\nthird\n```"
    )
    assert extract_code(reply) == "second = 2\n"


def test_extract_code_prefers_tagged_python_over_an_untagged_output_block() -> None:
    reply = "```python\nprint(2 + 2)\n```\nOutput:\n```\n4\n```"
    assert extract_code(reply) == "print(2 + 2)\n"
    assert extract_code("Run this:\n```\nx = 1\n```") == "x = 1\n"


def test_extract_code_unclosed_final_block_counts() -> None:
    assert extract_code("```python\na = 1\n```\nThen:\n```python\nb = 2\nprint(b)") == (
        "b = 2\nprint(b)\n"
    )


def test_extract_code_keeps_indentation_and_blank_lines_inside_the_block() -> None:
    code = "def f(x):\n    if x:\n\n        return 1\n    return 2\n\nprint(f(0))"
    assert extract_code(f"```python\n{code}\n\n\n```") == code + "\n"


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "No code is needed: the answer is 4.",
        "Use `print(x)` to see it.",
        "```python\n\n```",
        "```python\n   \n```\nand\n```bash\necho hi\n```",
    ],
)
def test_extract_code_without_code_is_none(reply: str) -> None:
    assert extract_code(reply) is None


def test_extract_code_handles_windows_line_endings() -> None:
    code = extract_code("Code:\r\n```python\r\nx = 1\r\nprint(x)\r\n```\r\n")
    assert code is not None
    assert compile(code, "<reply>", "exec")
    assert code.replace("\r", "") == "x = 1\nprint(x)\n"


def test_extract_code_dedents_a_fence_indented_in_a_list() -> None:
    reply = "1. Load the data:\n   ```python\n   x = 1\n   print(x)\n   ```\n"
    assert extract_code(reply) == "x = 1\nprint(x)\n"


def test_extract_code_reads_the_language_from_the_first_word_of_the_info_string() -> None:
    assert extract_code('```python title="a.py"\nx = 1\n```') == "x = 1\n"


# ---- calls_input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("x = input()", True),
        ("x = int(input('n: '))", True),
        ("import builtins\nbuiltins.input()", True),
        ("input_data = 1\nprint(input_data)", False),
        ("obj.input()", False),
        ("self.widget.input('x')", False),
        ("print('input()')", False),
        ("# input()\nx = 1", False),
        ("f = input", False),
        # Unparsable code (IPython syntax) falls back to a regex.
        ("!echo hi\nx = input ()", True),
        ("%time y = my_input()", False),
        ("%time y = obj.input()", False),
    ],
)
def test_calls_input(code: str, expected: bool) -> None:
    assert calls_input(code) is expected


# ---- strip_ansi and clip -----------------------------------------------------------------------
def test_strip_ansi_removes_colours_cursor_codes_and_bel_terminated_osc() -> None:
    text = (
        "\x1b[0;31mZeroDivisionError\x1b[0m: \x1b[1;32mdivision\x1b[39m by zero"
        "\x1b[2K\x1b[?25h\x1b]0;window title\x07 end"
    )
    assert strip_ansi(text) == "ZeroDivisionError: division by zero end"
    assert strip_ansi("plain [text] with ; and m") == "plain [text] with ; and m"


def test_strip_ansi_removes_st_terminated_hyperlinks() -> None:
    assert strip_ansi("see \x1b]8;;https://x.org\x1b\\docs\x1b]8;;\x1b\\ now") == "see docs now"


@pytest.mark.parametrize("length", [0, 1, 400, 999, CLIP_OVER])
def test_clip_leaves_text_up_to_the_limit_untouched(length: int) -> None:
    text = "x" * length
    assert clip(text) == text


@pytest.mark.parametrize("length", [CLIP_OVER + 1, 5000])
def test_clip_keeps_the_first_and_last_200_characters(length: int) -> None:
    text = "".join(chr(0x61 + (i * 7) % 26) for i in range(length))
    clipped = clip(text)
    head, marker, tail = clipped.split("\n")
    assert head == text[:CLIP_KEEP]
    assert tail == text[-CLIP_KEEP:]
    assert marker == f"... [{length - 2 * CLIP_KEEP} characters omitted] ..."
    assert len(clipped) < length


# ---- execution_feedback ------------------------------------------------------------------------
def test_feedback_ok_with_output() -> None:
    feedback = execution_feedback(ExecutionOutcome("ok", output="\x1b[1m4\x1b[0m\n\n"))
    # The result, then what to do with it: answer in words, or fix / go on with code.
    assert feedback == f"{FeedbackMarker}\n4\n\n{READ_HINT}"


def test_feedback_ok_without_output_hints_to_print_or_test() -> None:
    for output in ("", "  \n\n"):
        feedback = execution_feedback(ExecutionOutcome("ok", output=output))
        assert feedback.startswith(FeedbackMarker)
        assert "printed nothing" in feedback
        assert "Print the result" in feedback
        assert "assert" in feedback


def test_feedback_ok_long_output_is_clipped() -> None:
    output = "\n".join(f"line {i:04d}" for i in range(400))
    feedback = execution_feedback(ExecutionOutcome("ok", output=output))
    assert feedback == f"{FeedbackMarker}\n{clip(output)}\n\n{READ_HINT}"
    assert "line 0000" in feedback
    assert "line 0399" in feedback
    assert "line 0200" not in feedback


def test_feedback_error_has_output_before_and_stripped_traceback() -> None:
    outcome = ExecutionOutcome(
        "error",
        output="loading\n",
        ename="KeyError",
        evalue="'price'",
        traceback="\x1b[0;31mKeyError\x1b[0m  Traceback\n----> 3 df['price']\n"
        "\x1b[0;31mKeyError\x1b[0m: 'price'",
    )
    feedback = execution_feedback(outcome)
    assert feedback.startswith(f"{FeedbackMarker} the code raised an error.")
    assert "Output before it stopped:\nloading\n" in feedback
    assert "KeyError: 'price'" in feedback
    assert "----> 3 df['price']" in feedback
    assert "\x1b" not in feedback
    assert feedback.index("loading") < feedback.index("Traceback")
    assert "```python" in feedback


def test_feedback_error_without_traceback_uses_name_and_message() -> None:
    feedback = execution_feedback(ExecutionOutcome("error", ename="NameError", evalue="x"))
    assert "NameError: x" in feedback
    assert "Output before" not in feedback
    assert "NameError" in execution_feedback(ExecutionOutcome("error", ename="NameError"))


def test_feedback_error_long_traceback_is_clipped_to_head_and_tail() -> None:
    frames = "".join(f'  File "m.py", line {i}, in f\n    return f(n - 1)\n' for i in range(300))
    traceback = "Traceback (most recent call last):\n" + frames + "RecursionError: too deep"
    feedback = execution_feedback(
        ExecutionOutcome("error", ename="RecursionError", evalue="too deep", traceback=traceback)
    )
    assert "Traceback (most recent call last)" in feedback
    assert "RecursionError: too deep" in feedback
    assert "characters omitted" in feedback
    assert len(feedback) < 700


def test_feedback_timeout_mentions_the_limit() -> None:
    feedback = execution_feedback(ExecutionOutcome("timeout", output="step 1\n", time_limit=2.5))
    assert feedback.startswith(FeedbackMarker)
    assert "did not finish within 2.5 seconds" in feedback
    assert "Output before it stopped:\nstep 1" in feedback
    no_limit = execution_feedback(ExecutionOutcome("timeout"))
    assert "did not finish and was interrupted" in no_limit
    assert "Output before" not in no_limit


def test_feedback_cancelled_is_an_interrupt() -> None:
    feedback = execution_feedback(ExecutionOutcome("cancelled", output="partial\n"))
    assert feedback.startswith(FeedbackMarker)
    assert "KeyboardInterrupt" in feedback
    assert feedback.endswith("partial")
    assert execution_feedback(ExecutionOutcome("cancelled")).endswith("finished.")


def test_input_feedback_asks_to_assign_values() -> None:
    text = input_feedback()
    assert text.startswith(FeedbackMarker)
    assert "input()" in text
    assert "Assign the values directly" in text


# ---- fix_request -------------------------------------------------------------------------------
def test_fix_request_has_the_cell_and_the_stripped_traceback() -> None:
    outcome = ExecutionOutcome(
        "error",
        ename="ZeroDivisionError",
        evalue="division by zero",
        traceback="\x1b[0;31mZeroDivisionError\x1b[0m: division by zero",
    )
    request = fix_request("x = 1 / 0\n\n", outcome)
    assert request.startswith("This cell failed:\n```python\nx = 1 / 0\n```\n")
    assert "ZeroDivisionError: division by zero" in request
    assert "\x1b" not in request
    assert "one ```python block" in request


def test_same_code_ignores_trailing_spaces_and_blank_lines_only() -> None:
    assert same_code("x = 1\n\ny = 2\n", "\nx = 1   \ny = 2")
    assert not same_code("x = 1\ny = 2", "x = 1\n    y = 2")  # indentation matters
    assert not same_code("x = 1", "x = 2")


def test_repeat_feedback_names_the_earlier_failure() -> None:
    text = repeat_feedback("attempt 2", ExecutionOutcome("timeout"))
    assert text.startswith(f"{FeedbackMarker} not run: this is the same code as attempt 2")
    assert "failed with timeout" in text
    assert "one ```python block" in text


def test_fix_request_without_traceback_uses_the_summary() -> None:
    request = fix_request("d['k']", ExecutionOutcome("error", ename="KeyError", evalue="'k'"))
    assert "```\nKeyError: 'k'\n" in request
    timeout = fix_request("while 1: pass", ExecutionOutcome("timeout"))
    assert "```\ntimeout\n" in timeout


# ---- rank_cells and cell_text ------------------------------------------------------------------
def test_rank_cells_active_first_then_above_nearest_first_then_below() -> None:
    cells = [CellContext(source=str(i), active=i == 3) for i in range(7)]
    assert rank_cells(cells, 30) == [3, 2, 1, 0, 4, 5, 6]
    assert rank_cells(cells, 4) == [3, 2, 1, 0]
    assert rank_cells(cells, 5) == [3, 2, 1, 0, 4]


def test_rank_cells_without_active_cell_starts_from_the_end() -> None:
    cells = [CellContext(source=str(i)) for i in range(5)]
    assert rank_cells(cells, 30) == [4, 3, 2, 1, 0]
    assert rank_cells(cells, 2) == [4, 3]
    assert rank_cells([], 5) == []


def test_rank_cells_active_first_or_last_cell() -> None:
    first = [CellContext(source=str(i), active=i == 0) for i in range(4)]
    assert rank_cells(first, 30) == [0, 1, 2, 3]
    last = [CellContext(source=str(i), active=i == 3) for i in range(4)]
    assert rank_cells(last, 30) == [3, 2, 1, 0]


def test_defined_names_are_the_cells_global_bindings() -> None:
    source = (
        "import pandas as pd\nimport os.path\nfrom math import sqrt as root\n"
        "from typing import *\n%matplotlib inline\n!ls\ndf?\n"
        "df = pd.read_csv('a.csv')\na, (b, c) = 1, (2, 3)\ncount += 1\nlimit: int = 3\n"
        "for i in range(3):\n    pass\nwith open('f') as fh:\n    pass\n"
        "@decorate\ndef f(q):\n    local = 1\n    return local\n"
        "class K:\n    field = 1\n[w for w in range(3)]\n(y := 4)\n"
    )
    assert defined_names(source) == {
        "pd", "os", "root", "df", "a", "b", "c", "count", "limit", "i", "fh", "f", "K", "y",
    }  # fmt: skip


def test_defined_names_of_unparseable_cells_from_plain_lines() -> None:
    assert defined_names("x = 1\ny, z = 2, 3\ndef g(:\nclass H:\nif x == 1:\n") == {
        "x", "y", "z", "g", "H",
    }  # fmt: skip
    assert defined_names("%%bash\nA=1\n") == {"A"}


def test_used_names_skip_builtins_and_magics() -> None:
    assert used_names("df2 = df.dropna()\nprint(len(df2), total)\n%time slow()\n") == {
        "df", "df2", "total",
    }  # fmt: skip
    assert used_names("print(x +)") == {"x"}  # unparseable: identifiers, still no builtins


def test_failure_names_add_the_missing_name_of_a_name_error() -> None:
    outcome = ExecutionOutcome("error", ename="NameError", evalue="name 'helper' is not defined")
    assert failure_names("run()", outcome) == {"run", "helper"}
    assert failure_names("run()") == {"run"}


def test_rank_cells_with_needs_puts_the_definitions_first_transitively() -> None:
    sources = [
        "import pandas as pd",  # 0
        "raw = [1, 2]",  # 1
        "data = clean(raw)",  # 2: needs clean (4, below) and raw (1)
        "unrelated = 0",  # 3
        "def clean(v):\n    return v",  # 4: defined below its use: run out of order
        "raw = [3]",  # 5: a later raw, below the failing cell's definition of data
        "print(data.mean())",  # 6 active: needs data
        "z = 1",  # 7
    ]
    cells = [CellContext(source=s, active=i == 6) for i, s in enumerate(sources)]
    assert rank_cells(cells, 30, {"data", "print"}) == [6, 2, 4, 1, 5, 3, 0, 7]
    assert rank_cells(cells, 3, {"data"}) == [6, 2, 4]
    assert rank_cells(cells, 30, {"nowhere"}) == rank_cells(cells, 30)
    # Markdown does not define names, even when its text looks like an assignment.
    markdown = [CellContext("data = 1", kind="markdown"), CellContext("x", active=True)]
    assert rank_cells(markdown, 30, {"data"}) == [1, 0]


def test_cell_text_labels_marks_active_strips_and_cuts() -> None:
    limits = PromptLimits(cell_chars=100, output_chars=50)
    text = cell_text(
        CellContext(
            source="y" * 300 + "\n\n", output="\x1b[31m" + "o" * 80, label="In [7]", active=True
        ),
        limits,
    )
    header, rest = text.split("\n", 1)
    assert header == "# In [7]  <- active cell"
    assert rest.startswith("y" * 50 + "\n... [200 characters omitted] ...\n" + "y" * 50)
    assert "# Output:\n" + "o" * 25 + "\n... [30 characters omitted] ...\n" + "o" * 25 in text
    assert "\x1b" not in text
    assert cell_text(CellContext(source="# Title", kind="markdown"), limits) == (
        "# Markdown\n# Title"
    )
    assert cell_text(CellContext(source="x = 1", output="  \n"), limits) == "# Cell\nx = 1"


# ---- build_messages ----------------------------------------------------------------------------
def test_build_messages_without_context_is_system_history_request() -> None:
    history: list[Message] = [
        {"role": "user", "content": "earlier request"},
        {"role": "assistant", "content": "earlier answer"},
    ]
    messages = build_messages(
        "  plot it  \n",
        NotebookContext(language="julia"),
        window=8192,
        count=estimate_counter,
        history=history,
    )
    assert messages[0]["role"] == "system"
    assert messages[0]["content"].startswith(SYSTEM_PROMPT)
    assert "julia" in messages[0]["content"]
    assert messages[1:3] == history
    assert messages[3] == {"role": "user", "content": f"plot it\n\n{REQUEST_HINT}"}
    # A fix (or any caller) can leave the hint out.
    plain = build_messages(
        "plot it", NotebookContext(), window=8192, count=estimate_counter, hint=""
    )
    assert plain[-1] == {"role": "user", "content": "plot it"}


def test_build_messages_puts_variables_and_cells_before_the_request() -> None:
    context = NotebookContext(
        cells=[CellContext(source="import pandas as pd", label="In [1]", active=True)],
        variables=[VariableInfo("df", "DataFrame", "shape (3, 2)")],
    )
    messages = build_messages("describe df", context, window=4096, count=estimate_counter)
    prompt = messages[-1]["content"]
    assert prompt.startswith("Variables in the kernel:\n- df: DataFrame, shape (3, 2)\n\n")
    assert "Notebook cells, top to bottom:\n# In [1]  <- active cell\nimport pandas as pd" in prompt
    assert "not shown" not in prompt
    assert prompt.endswith(f"\n\nRequest:\ndescribe df\n\n{REQUEST_HINT}")


def test_build_messages_always_keeps_the_request() -> None:
    request = "please " * 200 + "do it"
    context = notebook([50] * 20, active=19)
    window = 1200
    messages = build_messages(
        request,
        context,
        window=window,
        count=word_counter,
        limits=PromptLimits(reply_tokens=256),
    )
    assert messages[-1]["content"].endswith(f"{request}\n\n{REQUEST_HINT}")
    assert prompt_tokens(messages, word_counter, PromptLimits()) <= window - 256


@pytest.mark.parametrize(
    ("window", "text", "reply_tokens"),
    [
        (100, "hi", 16),  # the system prompt alone does not fit
        (4096, "word " * 4000, 16),  # the request alone does not fit
        (2048, "hi", 2000),  # no room left for the reply
    ],
)
def test_build_messages_too_long_raises(window: int, text: str, reply_tokens: int) -> None:
    with pytest.raises(PromptTooLong, match=str(window)):
        build_messages(
            text,
            NotebookContext(),
            window=window,
            count=word_counter,
            limits=PromptLimits(reply_tokens=reply_tokens),
        )


def test_build_messages_history_is_newest_first_within_its_share() -> None:
    # Alternating turns of known sizes; the window grows one token at a time.
    history: list[Message] = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i} " + "w " * 91}
        for i in range(6)
    ]
    limits = PromptLimits(reply_tokens=100, history_share=0.4)
    kept_lengths = set()
    for window in range(300, 2200, 7):
        messages = build_messages(
            "go", NotebookContext(), window=window, count=word_counter, history=history,
            limits=limits, system="S",
        )  # fmt: skip
        kept = messages[1:-1]
        kept_lengths.add(len(kept))
        assert kept == history[len(history) - len(kept) :], "history must be the newest turns"
        assert not kept or kept[0]["role"] == "user", "history must not start with the model"
        spent = sum(word_counter([m["content"] for m in kept])) + 8 * len(kept)
        assert spent <= limits.history_share * (window - limits.reply_tokens)
        assert prompt_tokens(messages, word_counter, limits) <= window - limits.reply_tokens
    # Every suffix that starts with a user turn occurs, and no other.
    assert kept_lengths == {0, 2, 4, 6}


def test_build_messages_history_drops_a_leading_assistant_turn() -> None:
    history: list[Message] = [
        {"role": "assistant", "content": "an answer left from a trimmed conversation"},
        {"role": "user", "content": "thanks, now sort it"},
        {"role": "assistant", "content": "```python\ndf.sort_values('a')\n```"},
    ]
    messages = build_messages("go", NotebookContext(), window=8192, count=estimate_counter,
                              history=history)  # fmt: skip
    assert messages[1:-1] == history[1:]


def test_build_messages_variables_are_kept_in_order_within_their_share() -> None:
    variables = [VariableInfo(f"v{i}", "int", "value " + "9" * (i % 7)) for i in range(300)]
    limits = PromptLimits(reply_tokens=128, max_variables=300)
    counts = set()
    for window in (600, 800, 1200, 2000, 4000, 16000):
        messages = build_messages(
            "go", NotebookContext(variables=variables), window=window, count=piece_counter,
            limits=limits, system="S",
        )  # fmt: skip
        names = shown_variables(messages)
        counts.add(len(names))
        assert names == [f"v{i}" for i in range(len(names))]
        lines = [v.line() for v in variables[: len(names)]]
        spent = sum(piece_counter(lines)) + len(lines)
        assert spent <= limits.variables_share * (window - limits.reply_tokens)
    assert 0 < min(counts) < max(counts) == 300


def test_build_messages_respects_max_variables_and_max_cells() -> None:
    context = NotebookContext(
        cells=[CellContext(source=f"c{i}", label=f"In [{i}]") for i in range(10)],
        variables=[VariableInfo(f"v{i}", "int") for i in range(10)],
    )
    limits = PromptLimits(max_variables=3, max_cells=4)
    messages = build_messages("go", context, window=8192, count=estimate_counter, limits=limits)
    assert shown_variables(messages) == ["v0", "v1", "v2"]
    assert shown_cells(messages) == [6, 7, 8, 9]
    assert "(6 other cells not shown)" in messages[-1]["content"]


def test_build_messages_cells_ranked_but_shown_in_notebook_order() -> None:
    context = notebook([40] * 12, active=7)
    order = rank_cells(context.cells, 30)
    seen_partial = False
    for window in range(300, 1400, 11):
        messages = build_messages(
            "go", context, window=window, count=word_counter,
            limits=PromptLimits(reply_tokens=64), system="S",
        )  # fmt: skip
        shown = shown_cells(messages)
        # Equal cells: exactly the most relevant ones fit, shown top to bottom.
        assert shown == sorted(order[: len(shown)])
        omitted = len(context.cells) - len(shown)
        prompt = messages[-1]["content"]
        if shown and omitted:
            seen_partial = True
            assert f"Notebook cells, top to bottom ({omitted} other cells not shown):" in prompt
            assert "<- active cell" in prompt
        elif shown:
            assert "not shown" not in prompt
    assert seen_partial


def test_build_messages_a_large_cell_is_skipped_for_smaller_less_relevant_ones() -> None:
    # The cell just above the active one is too big; those further away still fit.
    context = notebook([10, 10, 10, 5000, 10], active=4)
    messages = build_messages(
        "go", context, window=700, count=word_counter, limits=PromptLimits(reply_tokens=64)
    )
    assert shown_cells(messages) == [0, 1, 2, 4]
    assert "(1 other cells not shown)" in messages[-1]["content"]


def random_context(rng: random.Random) -> tuple[NotebookContext, list[Message], str]:
    n_cells = rng.choice([0, 1, 3, 10, 40, 120])
    active = rng.choice([None, *range(n_cells)]) if n_cells else None
    words = ["x", "=", "df", "value", "print(", ")", "for", "in", "range(10):", "#"]
    cells = []
    for i in range(n_cells):
        source = " ".join(rng.choices(words, k=rng.randint(0, 700)))
        source = "\n".join(source[j : j + 60] for j in range(0, len(source), 60))
        output = "\x1b[32m" + "out " * rng.randint(0, 300) if rng.random() < 0.5 else ""
        kind = "markdown" if rng.random() < 0.2 else "code"
        cells.append(CellContext(source, output, label=f"In [{i}]", active=i == active, kind=kind))
    variables = [
        VariableInfo(f"v{i}", rng.choice(["int", "DataFrame", "str"]), "s " * rng.randint(0, 30))
        for i in range(rng.randint(0, 80))
    ]
    history: list[Message] = [
        {"role": "user" if (i + rng.randint(0, 1)) % 2 else "assistant",
         "content": "h " * rng.randint(1, 600)}
        for i in range(rng.randint(0, 8))
    ]  # fmt: skip
    request = " ".join(rng.choices(words, k=rng.randint(1, 60)))
    return NotebookContext(cells=cells, variables=variables), history, request


def check_random_notebooks(count: Counter, cases: int = 200, seed: int = 1234) -> int:
    """Build prompts for random notebooks; return how many fitted (the rest were too long)."""
    rng = random.Random(seed)
    built = 0
    for case in range(cases):
        context, history, request = random_context(rng)
        window = rng.randint(512, 8192)
        limits = PromptLimits(
            reply_tokens=rng.randint(0, window // 4),
            max_cells=rng.choice([5, 30, 200]),
            per_message_overhead=rng.choice([0, 4, 8]),
        )
        try:
            messages = build_messages(
                request, context, window=window, count=count, history=history, limits=limits
            )
        except PromptTooLong:
            # Only when the system prompt, the request and the reply's room nearly fill it.
            minimal = sum(count([SYSTEM_PROMPT, request, REQUEST_HINT])) + limits.reply_tokens
            assert minimal > window - 100, f"case {case}: PromptTooLong with room to spare"
            continue
        built += 1
        used = prompt_tokens(messages, count, limits)
        assert used <= window - limits.reply_tokens, (
            f"case {case}: {used} tokens > window {window} - reply {limits.reply_tokens}"
        )
        assert messages[0]["role"] == "system"
        assert messages[-1]["role"] == "user"
        assert messages[-1]["content"].endswith(f"{request.strip()}\n\n{REQUEST_HINT}")
        assert len(messages) == 2 or messages[1]["role"] == "user"
        shown = shown_cells(messages)
        assert shown == sorted(shown)
        active = active_index(context)
        if shown and active is not None and active not in shown:
            # The active cell is the first candidate: it is left out only when it is larger
            # than every cell that was shown.
            active_tokens = count([cell_text(context.cells[active], limits)])[0]
            shown_tokens = count([cell_text(context.cells[i], limits) for i in shown])
            assert active_tokens > max(shown_tokens), f"case {case}: active cell left out"
    return built


def active_index(context: NotebookContext) -> int | None:
    return next((i for i, c in enumerate(context.cells) if c.active), None)


@pytest.mark.parametrize("counter", [estimate_counter, word_counter, piece_counter])
def test_build_messages_never_exceeds_the_window_for_random_notebooks(counter: Counter) -> None:
    built = check_random_notebooks(counter)
    assert built > 150, "most random cases should build"


def test_build_messages_never_exceeds_the_window_with_a_character_counter() -> None:
    # Many small cells fill the cells' budget to the last token; the headers are not counted.
    context = NotebookContext(
        cells=[CellContext(source=f"x{i} = {i}", label=f"In [{i}]") for i in range(400)],
        variables=[VariableInfo(f"v{i}", "int", "value 1") for i in range(5)],
    )
    limits = PromptLimits(reply_tokens=256, max_cells=400)
    window = 4000
    messages = build_messages("go", context, window=window, count=char_counter,
                              limits=limits, system="S")  # fmt: skip
    assert 0 < len(shown_cells(messages)) < 400
    assert prompt_tokens(messages, char_counter, limits) <= window - limits.reply_tokens


def test_build_messages_a_thousand_cell_notebook() -> None:
    rng = random.Random(7)
    cells = [
        CellContext(
            source=f"step_{i} = {i}\n" + "x = x + 1\n" * rng.randint(0, 30),
            output="done\n" * rng.randint(0, 5),
            label=f"In [{i}]",
            active=i == 500,
        )
        for i in range(1000)
    ]
    context = NotebookContext(cells=cells)
    for max_cells in (30, 1000):
        limits = PromptLimits(max_cells=max_cells)
        messages = build_messages(
            "summarise", context, window=8192, count=estimate_counter, limits=limits
        )
        shown = shown_cells(messages)
        assert 500 in shown
        assert 499 in shown
        assert shown == sorted(shown)
        assert len(shown) <= max_cells
        assert f"({1000 - len(shown)} other cells not shown)" in messages[-1]["content"]
        assert prompt_tokens(messages, estimate_counter, limits) <= 8192 - limits.reply_tokens
