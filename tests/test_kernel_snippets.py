"""The kernel snippets written once: the sidebar and ``%%oci`` give the same answer.

The sidebar sends ``oci_jupyter/kernel_snippets/*.py`` as text (bundled into
``src/kernel/snippets.generated.ts`` at build time) in a silent user expression; ``%%oci`` imports
the same modules. Both paths run here in one real kernel on the same objects, among them
subclasses of ``list``, ``dict`` and ``float`` whose own ``__len__``/``__repr__`` are slow and
record that they ran: the variable description must call none of them on either path.
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kernels import Kernel, ipykernel

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "src" / "kernel" / "snippets.generated.ts"
SNIPPETS = ROOT / "oci_jupyter" / "kernel_snippets"

USER_CELL = """
import time
from pathlib import Path

import numpy as np
import pandas as pd

calls = []

class SlowRows(list):
    def __len__(self):
        calls.append("SlowRows.__len__")  # e.g. a query counting rows in a database
        time.sleep(3)
        return 0

    def __repr__(self):
        calls.append("SlowRows.__repr__")
        return "SlowRows(...)"

class Settings(dict):
    def __len__(self):
        calls.append("Settings.__len__")
        return 0

class Money(float):
    def __repr__(self):
        calls.append("Money.__repr__")
        return "Money(2.5)"

class Explosive:
    def __len__(self):
        raise RuntimeError("must not be called")
    def __repr__(self):
        raise RuntimeError("must not be called")

def load(path: str, *, limit: int = 10) -> list:
    return [path]

df = pd.DataFrame({"a": [1, 2], "Fare": [0.5, 1.5]})
arr = np.zeros((2, 3))
series = pd.Series([1.0, 2.0])
best = "east"
count = 42
ratio = 0.25
text = "x" * 100
sums = {"east": 69, "south": 12}
rows = SlowRows([1, 2, 3])
settings = Settings(a=1)
price = Money(2.5)
bomb = Explosive()
folder = Path(".")
"""


def generated_sources() -> dict[str, str]:
    """The string constants of the generated TypeScript, as the bundle holds them (a JS
    string literal of prettier's is a valid Python literal)."""
    found = re.findall(r"^export const (\w+) =\s*(.+);$", GENERATED.read_text(), re.MULTILINE)
    return {name: ast.literal_eval(literal) for name, literal in found}


def sidebar_expression(source: str, *args: Any) -> str:
    """The user expression as src/context.ts ``snippetExpression`` builds it."""
    extra = "".join(f", {json.dumps(arg)}" for arg in args)
    return (
        f"(lambda d: (exec({json.dumps(source)}, d), d['kernel_reply'](globals(){extra}))[1])({{}})"
    )


def silent(kernel: Kernel, expression: str) -> str:
    """Evaluate an expression the way the sidebar does: an empty silent cell."""
    msg_id = kernel.client.execute(
        "",
        silent=True,
        store_history=False,
        allow_stdin=False,
        user_expressions={"oci": expression},
    )
    reply = kernel.reply(msg_id)
    result = reply["content"]["user_expressions"]["oci"]
    assert result["status"] == "ok", result
    return str(result["data"]["text/plain"])


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with ipykernel(env) as running:
        run = running.run(USER_CELL)
        assert run.status == "ok", run.text
        yield running


def calls(kernel: Kernel) -> list[str]:
    return list(ast.literal_eval(kernel.value("calls")))


def test_the_bundle_holds_the_python_files_as_they_are() -> None:
    sources = generated_sources()
    assert sources["DESCRIBE_VARIABLES_SOURCE"] == (SNIPPETS / "describe_variables.py").read_text()
    assert sources["VALUES_LOOKUP_SOURCE"] == (SNIPPETS / "values_lookup.py").read_text()


def test_both_paths_describe_the_variables_alike_without_calling_user_code(kernel: Kernel) -> None:
    source = generated_sources()["DESCRIBE_VARIABLES_SOURCE"]
    sidebar = json.loads(silent(kernel, sidebar_expression(source)))
    # %%oci: magic.py calls kernel_context.describe_variables(self.shell.user_ns).
    magic = json.loads(
        ast.literal_eval(
            silent(
                kernel,
                "__import__('json').dumps([__import__('dataclasses').asdict(v) for v in "
                "__import__('oci_jupyter.kernel_context', fromlist=['x'])"
                ".describe_variables(get_ipython().user_ns)])",
            )
        )
    )
    assert sidebar == magic
    described = {v["name"]: v for v in sidebar}
    assert described["df"]["summary"] == "shape (2, 2), columns: a (int64), Fare (float64)"
    assert described["count"]["summary"] == "value 42"
    assert described["load"]["summary"] == "load(path: str, *, limit: int = 10) -> list"
    # Subclasses are named by their type only: their own __len__/__repr__ never ran.
    assert described["rows"] == {"name": "rows", "type": "__main__.SlowRows", "summary": ""}
    assert described["settings"]["summary"] == ""
    assert described["price"]["summary"] == ""
    assert described["bomb"]["type"] == "__main__.Explosive"
    assert calls(kernel) == []
    # Nothing is left behind in the user's namespace.
    assert {"d", "kernel_reply", "JsonText"}.isdisjoint(ast.literal_eval(kernel.value("dir()")))


def test_both_paths_look_up_the_same_values(kernel: Kernel) -> None:
    source = generated_sources()["VALUES_LOOKUP_SOURCE"]
    names = ["best", "sums", "rows", "price", "bomb", "missing"]
    sidebar = json.loads(silent(kernel, sidebar_expression(source, names)))
    # %%oci: execution.py calls prompts.values.lookup_values(self.shell.user_ns, names).
    magic = json.loads(
        ast.literal_eval(
            silent(
                kernel,
                "__import__('json').dumps(dict(__import__('oci_jupyter.prompts.values', "
                f"fromlist=['x']).lookup_values(get_ipython().user_ns, {json.dumps(names)})))",
            )
        )
    )
    assert sidebar == magic
    assert sidebar["best"] == "'east'"
    assert sidebar["bomb"].startswith("<Explosive")  # reprlib contains the failure
    assert "missing" not in sidebar
