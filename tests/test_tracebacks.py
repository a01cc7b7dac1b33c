"""Tracebacks shaped for the model (prompts/tracebacks.py): the user's frames and the error
kept whole, library frames counted in one line."""

from __future__ import annotations

import traceback

from oci_jupyter.prompts.feedback import CLIP_OVER, execution_feedback
from oci_jupyter.prompts.tracebacks import shape_traceback
from oci_jupyter.types import ExecutionOutcome

SITE = "/home/someone/.venv/lib/python3.11/site-packages"
PANDAS_ERROR = f"""---------------------------------------------------------------------------
ValueError                                Traceback (most recent call last)
Cell In[1], line 4
      1 import pandas as pd
      2 df = pd.DataFrame({{'a': ['1', '630308[495000-801000]']}})
      3 # a comment
----> 4 df['a'] = df['a'].astype('Int64')
      5 print(df)

File {SITE}/pandas/core/generic.py:6781, in NDFrame.astype(self, dtype, copy, errors)
   6779         else:
-> 6781             new_data = self._mgr.astype(dtype=dtype, errors=errors)
   6782             res = self._constructor_from_mgr(new_data, axes=new_data.axes)

File {SITE}/pandas/core/internals/managers.py:632, in BaseBlockManager.astype(self, dtype)
    631 def astype(self, dtype, errors: str = "raise") -> Self:
--> 632     return self.apply("astype", dtype=dtype, errors=errors)

File {SITE}/pandas/core/arrays/string_.py:938, in StringArray.astype(self, dtype, copy)
    937     arr[mask] = 0
--> 938     values = arr.astype(dtype.numpy_dtype)
{"    " * 40}# a long line of library source that the model does not need to read
    939     return IntegerArray(values, mask, copy=False)

ValueError: invalid literal for int() with base 10: '630308[495000-801000]'"""


def test_the_failing_line_of_the_cell_survives_a_long_library_traceback() -> None:
    shaped = shape_traceback(PANDAS_ERROR)
    assert "----> 4 df['a'] = df['a'].astype('Int64')" in shaped
    assert shaped.endswith(
        "ValueError: invalid literal for int() with base 10: '630308[495000-801000]'"
    )
    assert (
        "[3 frames of library code; the error was raised in File pandas/core/arrays/string_.py:938"
        in shaped
    )
    assert "site-packages" not in shaped
    assert "_mgr.astype" not in shaped
    # Before, the clipped traceback lost the cell's failing line; now it is in the feedback.
    assert len(PANDAS_ERROR) > CLIP_OVER
    outcome = ExecutionOutcome(
        status="error", ename="ValueError", evalue="invalid literal", traceback=PANDAS_ERROR
    )
    assert "----> 4 df['a'] = df['a'].astype('Int64')" in execution_feedback(outcome)


def test_pythons_own_tracebacks_and_the_users_modules_are_kept() -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "<string>", line 7, in <module>\n'
        '  File "/home/someone/project/helpers.py", line 6, in parse\n'
        "    return json.loads(text)\n"
        '  File "/usr/lib/python3.11/json/__init__.py", line 346, in loads\n'
        "    return _default_decoder.decode(s)\n"
        '  File "/usr/lib/python3.11/json/decoder.py", line 353, in raw_decode\n'
        "    obj, end = self.scan_once(s, idx)\n"
        "json.decoder.JSONDecodeError: Expecting value: line 1 column 2 (char 1)"
    )
    shaped = shape_traceback(text)
    assert '  File "/home/someone/project/helpers.py", line 6, in parse' in shaped
    assert "    return json.loads(text)" in shaped
    assert '[2 frames of library code; the error was raised in File "json/decoder.py"' in shaped
    assert shaped.endswith(
        "json.decoder.JSONDecodeError: Expecting value: line 1 column 2 (char 1)"
    )


def test_a_chained_tracebacks_messages_are_kept() -> None:
    def inner() -> None:
        raise KeyError("price")

    try:
        try:
            inner()
        except KeyError as exc:
            raise ValueError("no price column") from exc
    except ValueError as exc:
        text = "".join(traceback.format_exception(exc))
    shaped = shape_traceback(text)
    assert "KeyError: 'price'" in shaped
    assert "direct cause of the following exception" in shaped
    assert shaped.endswith("ValueError: no price column")


def test_text_without_frames_is_left_alone() -> None:
    assert shape_traceback("ZeroDivisionError: division by zero") == (
        "ZeroDivisionError: division by zero"
    )
