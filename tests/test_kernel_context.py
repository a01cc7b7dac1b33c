"""describe_variables: what the model learns about a kernel's namespace, cheaply and safely."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from oci_jupyter.kernel_context import MAX_COLUMNS, describe, describe_variables
from oci_jupyter.prompts import VariableInfo

ROOT = Path(__file__).resolve().parent.parent


def by_name(infos: list[VariableInfo]) -> dict[str, VariableInfo]:
    return {info.name: info for info in infos}


# ---- data --------------------------------------------------------------------------------------
def test_dataframe_shape_and_columns_with_dtypes() -> None:
    df = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5], "c": [True, False, True]})
    info = describe("df", df)
    assert info is not None
    assert info.type == "DataFrame"
    assert info.summary == "shape (3, 3), columns: a (int64), b (float64), c (bool)"
    assert info.line() == "- df: DataFrame, " + info.summary


def test_dataframe_columns_are_cut_after_25() -> None:
    df = pd.DataFrame({f"col{i}": [i] for i in range(40)})
    info = describe("wide", df)
    assert info is not None
    assert info.summary.startswith("shape (1, 40), columns: col0 (int64), col1 (int64)")
    assert f"col{MAX_COLUMNS - 1} (int64)" in info.summary
    assert f"col{MAX_COLUMNS} " not in info.summary
    assert info.summary.endswith(f", ... {40 - MAX_COLUMNS} more")
    assert MAX_COLUMNS == 25


def test_dataframe_with_exactly_25_columns_has_no_more_marker() -> None:
    info = describe("df", pd.DataFrame({f"c{i}": [0.0] for i in range(25)}))
    assert info is not None
    assert "more" not in info.summary
    assert "c24 (float64)" in info.summary


def test_empty_dataframe() -> None:
    info = describe("empty", pd.DataFrame())
    assert info is not None
    assert info.type == "DataFrame"
    assert info.summary.startswith("shape (0, 0)")


def test_series() -> None:
    info = describe("s", pd.Series([1.0, 2.0, math.nan]))
    assert info == VariableInfo("s", "Series", "len 3, dtype float64")


def test_ndarray() -> None:
    info = describe("a", np.zeros((2, 3), dtype=np.float32))
    assert info == VariableInfo("a", "ndarray", "shape (2, 3), dtype float32")


# ---- plain values ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "type_name", "summary"),
    [
        (42, "int", "value 42"),
        (2.5, "float", "value 2.5"),
        (True, "bool", "value True"),
        (1 + 2j, "complex", "value (1+2j)"),
    ],
)
def test_scalars_show_their_value(value: object, type_name: str, summary: str) -> None:
    assert describe("x", value) == VariableInfo("x", type_name, summary)


def test_short_string_is_shown_whole() -> None:
    assert describe("s", "hello") == VariableInfo("s", "str", "len 5, value 'hello'")


def test_long_string_is_cut() -> None:
    text = "abcdefghij" * 100
    info = describe("s", text)
    assert info is not None
    assert info.summary == f"len 1000, value {text[:57] + '...'!r}"
    assert len(info.summary) < 100
    assert describe("s", "x" * 60) == VariableInfo("s", "str", f"len 60, value {'x' * 60!r}")


@pytest.mark.parametrize(
    ("value", "type_name"),
    [([1, 2, 3], "list"), ((1, 2, 3), "tuple"), ({"a": 1, "b": 2, "c": 3}, "dict"),
     ({1, 2, 3}, "set"), (frozenset({1, 2, 3}), "frozenset")],
)  # fmt: skip
def test_containers_show_their_length(value: object, type_name: str) -> None:
    assert describe("c", value) == VariableInfo("c", type_name, "len 3")


def test_function_shows_its_signature() -> None:
    # Defined as in a notebook cell (this module's annotations are strings).
    cell: dict[str, object] = {}
    source = "def load(path: str, *, limit: int = 10) -> list[str]:\n    return [path]\n"
    exec(compile(source, "<cell>", "exec", dont_inherit=True), cell)
    info = describe("load", cell["load"])
    assert info is not None
    assert info.type == "function"
    assert info.summary == "load(path: str, *, limit: int = 10) -> list[str]"
    assert describe("square", lambda x: x * x) == VariableInfo("square", "function", "square(x)")


def test_class_is_named_a_class() -> None:
    class Model:
        pass

    assert describe("Model", Model) == VariableInfo("Model", "class", "")


def test_other_objects_get_their_qualified_type_name() -> None:
    info = describe("p", Path("/tmp"))
    assert info is not None
    assert info.type == f"{type(Path('/tmp')).__module__}.{type(Path('/tmp')).__name__}"
    assert info.summary == ""


def test_builtin_callables_are_skipped() -> None:
    assert describe("p", print) is None
    assert describe("m", max) is None


# ---- what is skipped ---------------------------------------------------------------------------
def test_modules_underscore_names_and_ipython_names_are_skipped() -> None:
    namespace = {
        "np": np,
        "os": os,
        "_": 3,
        "__": 4,
        "_i1": "x = 1",
        "_oh": {1: 2},
        "__builtins__": __builtins__,
        "In": ["", "x = 1"],
        "Out": {1: 2},
        "exit": object(),
        "quit": object(),
        "get_ipython": lambda: None,
        "open": open,
        "x": 1,
    }
    assert describe_variables(namespace) == [VariableInfo("x", "int", "value 1")]


def test_a_real_ipython_namespace_shows_only_the_users_variables() -> None:
    script = (
        "import json\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "from oci_jupyter.kernel_context import describe_variables\n"
        "shell = InteractiveShell.instance()\n"
        "shell.run_cell('import math\\nrows = [1, 2]\\nrows\\ndef f(a): return a\\n')\n"
        "print(json.dumps([[v.name, v.type, v.summary] "
        "for v in describe_variables(shell.user_ns)]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == [["rows", "list", "len 2"], ["f", "function", "f(a)"]]


# ---- objects that must not be called ----------------------------------------------------------
class Explosive:
    """An object whose dunder methods must never run (they raise, or would hang)."""

    calls: list[str] = []

    def __len__(self) -> int:
        Explosive.calls.append("__len__")
        raise RuntimeError("__len__ must not be called")

    def __repr__(self) -> str:
        Explosive.calls.append("__repr__")
        raise RuntimeError("__repr__ must not be called")

    def __str__(self) -> str:
        Explosive.calls.append("__str__")
        raise RuntimeError("__str__ must not be called")

    def __iter__(self) -> types.GeneratorType:
        Explosive.calls.append("__iter__")
        raise RuntimeError("__iter__ must not be called")

    def __bool__(self) -> bool:
        Explosive.calls.append("__bool__")
        raise RuntimeError("__bool__ must not be called")


def test_an_object_whose_len_and_repr_raise_is_described_by_type_only() -> None:
    Explosive.calls.clear()
    found = describe_variables({"bomb": Explosive(), "n": 1})
    assert found == [
        VariableInfo("n", "int", "value 1"),
        VariableInfo("bomb", f"{Explosive.__module__}.Explosive", ""),
    ]
    assert Explosive.calls == []


def test_a_broken_dataframe_lookalike_is_described_by_type_only() -> None:
    # Named like a pandas frame but breaks on every attribute: the error is contained.
    broken = type(
        "DataFrame", (), {"__module__": "pandas.fake", "dtypes": property(lambda s: 1 / 0)}
    )
    info = describe("df", broken())
    assert info == VariableInfo("df", "pandas.fake.DataFrame", "")


def test_a_container_subclass_with_its_own_len_is_not_called() -> None:
    calls: list[str] = []

    class LazyRows(list):
        def __len__(self) -> int:
            calls.append("__len__")  # e.g. a query that counts rows in a database
            return 0

    class Money(float):
        def __repr__(self) -> str:
            calls.append("__repr__")
            return "Money(...)"

    found = by_name(describe_variables({"rows": LazyRows(), "price": Money(2.5)}))
    assert set(found) == {"rows", "price"}
    assert calls == []


def test_a_proxy_whose_attribute_lookup_raises_does_not_break_the_description() -> None:
    class Proxy:
        def __getattribute__(self, name: str) -> object:
            raise RuntimeError("working outside of a context")

    found = by_name(describe_variables({"proxy": Proxy(), "n": 1}))
    assert found["n"] == VariableInfo("n", "int", "value 1")
    assert found["proxy"].type.endswith("Proxy")


# ---- order and limit ---------------------------------------------------------------------------
def make_namespace() -> dict[str, object]:
    def helper(a: int) -> int:
        return a

    class Thing:
        pass

    return {
        "z_func": helper,
        "a_class": Thing,
        "m_obj": Path("."),
        "b_list": [1],
        "c_text": "hi",
        "d_num": 3,
        "y_frame": pd.DataFrame({"a": [1]}),
        "x_array": np.arange(3),
        "w_series": pd.Series([1]),
    }


def test_data_first_then_values_then_objects_then_functions_and_classes() -> None:
    names = [info.name for info in describe_variables(make_namespace())]
    assert names == [
        "w_series", "x_array", "y_frame",  # pandas / numpy data
        "b_list", "c_text", "d_num",  # containers, strings, scalars
        "m_obj",  # other objects
        "a_class", "z_func",  # code
    ]  # fmt: skip


@pytest.mark.parametrize("limit", [0, 1, 3, 5, 100])
def test_limit_is_respected_and_keeps_the_highest_ranked(limit: int) -> None:
    full = describe_variables(make_namespace())
    limited = describe_variables(make_namespace(), limit=limit)
    assert len(limited) == min(limit, len(full))
    assert limited == full[:limit]


def test_many_variables_default_limit() -> None:
    namespace = {f"v{i:03d}": i for i in range(250)}
    found = describe_variables(namespace)
    assert len(found) == 100
    assert [v.name for v in found] == [f"v{i:03d}" for i in range(100)]
