"""%%oci in a real ipykernel, talking to a real Jupyter server (scripted engine and real model)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .kernels import Kernel, ipykernel
from .servers import RunningServer, jupyter_server

FIXED = "Here it is:\n```python\nvalues = [n * n for n in range(1, 6)]\nprint(sum(values))\n```"
BROKEN = "```python\nvalues = [n * n for n in rnage(1, 6)]\nprint(sum(values))\n```"


class Script:
    """The scripted engine's replies and the prompts it received, in a shared file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.set([])

    def set(self, replies: list[str]) -> None:
        self.path.write_text(json.dumps({"replies": replies, "prompts": []}))

    @property
    def prompts(self) -> list[list[dict[str, str]]]:
        return list(json.loads(self.path.read_text())["prompts"])


@pytest.fixture(scope="module")
def script_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("script") / "script.json"


@pytest.fixture(scope="module")
def scripted_server(
    tmp_path_factory: pytest.TempPathFactory, script_path: Path
) -> Iterator[RunningServer]:
    Script(script_path)
    oci = {
        "engine_class": "tests.doubles.ScriptedTestEngine",
        "engine_kwargs": {"script_file": str(script_path), "token_delay": 0.002},
    }
    with jupyter_server(tmp_path_factory.mktemp("scripted"), oci) as server:
        yield server


@pytest.fixture
def script(script_path: Path, scripted_server: RunningServer) -> Script:
    return Script(script_path)


@pytest.fixture(scope="module")
def kernel(scripted_server: RunningServer) -> Iterator[Kernel]:
    with ipykernel(scripted_server.kernel_env()) as running:
        assert running.run("%load_ext oci_jupyter").status == "ok"
        yield running


@pytest.fixture(autouse=True)
def _fresh_conversation(request: pytest.FixtureRequest) -> None:
    if "kernel" in request.fixturenames:
        request.getfixturevalue("kernel").run("%oci reset")


def test_two_turns_first_raises_then_fixed(kernel: Kernel, script: Script) -> None:
    script.set([BROKEN, FIXED])
    run = kernel.run("%%oci\nsum the squares of 1..5")
    assert run.status == "ok"
    assert "NameError" in run.text  # the failing attempt's traceback is shown in the cell
    assert "55" in run.text
    summary = run.final_markdown[-1]
    assert "success" in summary
    assert "2 turns" in summary
    assert "values = [n * n for n in range(1, 6)]" in summary  # the final code is shown
    assert kernel.value("values") == "[1, 4, 9, 16, 25]"  # defined in the user's namespace

    first, second = script.prompts
    assert first[0]["role"] == "system"
    assert first[-1]["role"] == "user"
    assert first[-1]["content"].endswith("sum the squares of 1..5")
    feedback = second[-1]["content"]
    assert second[-2] == {"role": "assistant", "content": BROKEN}
    assert feedback.startswith("Execution result: the code raised an error.")
    assert "NameError: name 'rnage' is not defined" in feedback
    assert "\x1b[" not in feedback  # ANSI colours stripped


def test_context_has_variables_and_recent_cells(kernel: Kernel, script: Script) -> None:
    kernel.run("import pandas as pd\nsales = pd.DataFrame({'region': ['n', 's'], 'units': [3, 4]})")
    script.set(["```python\nprint(sales.units.sum())\n```"])
    run = kernel.run("%%oci\ntotal units sold")
    assert "7" in run.text
    prompt = script.prompts[0][-1]["content"]
    # (pandas 2 calls the text column's dtype "object", pandas 3 "str")
    assert "- sales: DataFrame, shape (2, 2), columns: region (" in prompt
    assert "), units (int64)" in prompt
    assert "sales = pd.DataFrame(" in prompt  # the cell that made it


def test_memory_carries_across_cells_and_reset_clears_it(kernel: Kernel, script: Script) -> None:
    script.set(["```python\nnumbers = [3, 1, 2]\n```", "```python\nprint(sorted(numbers))\n```"])
    kernel.run("%%oci\nmake a list of three numbers")
    run = kernel.run("%oci now sort it")
    assert "[1, 2, 3]" in run.text
    second = script.prompts[1]
    contents = [m["content"] for m in second]
    assert "make a list of three numbers" in contents  # the earlier request, in the history
    assert "```python\nnumbers = [3, 1, 2]\n```" in contents
    kernel.run("%oci reset")
    script.set(["no code needed"])
    kernel.run("%oci hello")
    assert all("make a list" not in m["content"] for m in script.prompts[0])


def test_interpolation_no_exec_and_insert(kernel: Kernel, script: Script) -> None:
    kernel.run("target = 'parquet'")
    script.set(["```python\nwritten = True\n```"])
    run = kernel.run("%%oci --no-exec --insert\nsave the frame as {target}")
    assert "save the frame as parquet" in script.prompts[0][-1]["content"]
    assert "not run" in run.final_markdown[-1]
    assert kernel.value("'written' in globals()") == "False"  # --no-exec ran nothing
    payload = run.reply["content"]["payload"]
    assert payload[0]["source"] == "set_next_input"
    assert payload[0]["text"] == "written = True\n"


def test_turn_limit_and_time_limit(kernel: Kernel, script: Script) -> None:
    slow = "```python\nimport time\ntime.sleep(30)\n```"
    script.set([slow, slow])
    started = time.monotonic()
    run = kernel.run("%%oci --turns 2 --timeout 1\nwait a bit")
    assert time.monotonic() - started < 15
    assert "failed" in run.final_markdown[-1]
    assert "Still failing after 2 turns" in run.final_markdown[-1]
    feedback = script.prompts[1][-1]["content"]
    assert "did not finish within 1 seconds" in feedback
    assert kernel.run("print('kernel alive')").text.strip() == "kernel alive"


def test_oci_fix_repairs_the_last_failing_cell(kernel: Kernel, script: Script) -> None:
    failed = kernel.run("total = prices * 2")
    assert failed.status == "error"
    script.set(
        ["The name is undefined; define it first.\n```python\nprices = 21\ntotal = prices * 2\n```"]
    )
    run = kernel.run("%oci fix")
    assert kernel.value("total") == "42"
    assert "success" in run.final_markdown[-1]
    request = script.prompts[0][-1]["content"]
    assert "This cell failed:\n```python\ntotal = prices * 2\n```" in request
    assert "NameError: name 'prices' is not defined" in request
    again = kernel.run("%oci fix")
    assert "no cell has failed" in again.text


def test_oci_fix_does_not_rerun_the_failing_cell_handed_back(
    kernel: Kernel, script: Script
) -> None:
    assert kernel.run("area = width * 3").status == "error"
    script.set(
        [
            "```python\narea = width * 3\n```",
            "```python\nwidth = 2\narea = width * 3\nprint(area)\n```",
        ]
    )
    run = kernel.run("%oci fix")
    assert "*not run: same as before*" in run.final_markdown
    assert kernel.value("area") == "6"
    assert "same code as the cell" in script.prompts[1][-1]["content"]


def test_oci_fix_sends_the_cell_that_defines_what_the_failing_cell_reads(
    kernel: Kernel, script: Script
) -> None:
    # 35 cells between the definition and the failure: beyond the 30 most recent cells a
    # request considers, yet the definition must reach the model.
    assert kernel.run("tax_rate = '0.2'  # a string: the root cause").status == "ok"
    for i in range(35):
        assert kernel.run(f"unrelated_{i} = {i}").status == "ok"
    assert kernel.run("gross = 100 * (1 + tax_rate)").status == "error"
    script.set(["```python\ngross = 100 * (1 + float(tax_rate))\nprint(gross)\n```"])
    kernel.run("%oci fix")
    assert kernel.value("gross") == "120.0"
    request = script.prompts[0][-1]["content"]
    assert "tax_rate = '0.2'  # a string: the root cause" in request
    assert "unrelated_0 = 0" not in request
    context, _, failing = request.partition("Request:\n")
    assert "gross = 100 * (1 + tax_rate)" not in context  # shown once, in the request
    assert "This cell failed:\n```python\ngross = 100 * (1 + tax_rate)\n```" in failing


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%%oci --bogus\ndo it", "unknown option --bogus"),
        ("%%oci\n   ", "say what you want"),
        ("%%oci --turns 0\nx", "--turns must be at least 1"),
        ("%%oci --turns many\nx", "invalid int value"),
    ],
)
def test_bad_input_gets_a_clear_message(
    kernel: Kernel, script: Script, line: str, message: str
) -> None:
    run = kernel.run(line)
    assert run.status == "ok"  # a message, not a traceback
    assert message in run.text
    assert script.prompts == []


def test_help_shows_the_options(kernel: Kernel) -> None:
    run = kernel.run("%%oci?")
    assert "--no-exec" in run.text or "--no-exec" in json.dumps(run.reply["content"])


def test_interrupt_cancels_the_request_on_the_server(
    kernel: Kernel, script: Script, scripted_server: RunningServer
) -> None:
    script.set(["word " * 3000])  # ~6 s of streaming at 2 ms a token
    msg_id = kernel.start("%%oci\nwrite a lot")
    kernel.iopub_until(lambda m: m["header"]["msg_type"] == "update_display_data")
    assert scripted_server.get("oci", "status")["running_requests"] == 1
    kernel.manager.interrupt_kernel()
    reply = kernel.reply(msg_id, timeout=30)
    assert reply["content"]["status"] == "ok"
    deadline = time.monotonic() + 5
    while scripted_server.get("oci", "status")["running_requests"]:
        assert time.monotonic() < deadline, "the server is still generating"
        time.sleep(0.05)
    assert kernel.run("print(1 + 1)").text.strip() == "2"


def test_no_server_gets_a_clear_message(scripted_server: RunningServer) -> None:
    env = scripted_server.kernel_env()
    env.pop("OCI_SERVER_URL")
    with ipykernel(env) as lonely:
        lonely.run("%load_ext oci_jupyter")
        run = lonely.run("%%oci\nanything")
    assert run.status == "ok"
    assert "No Jupyter server with oci_jupyter was found" in run.text
    assert "OCI_SERVER_URL" in run.text


def test_unreachable_server_gets_a_clear_message(scripted_server: RunningServer) -> None:
    from .conftest import free_port

    env = scripted_server.kernel_env()
    env["OCI_SERVER_URL"] = f"http://127.0.0.1:{free_port()}/"
    with ipykernel(env) as lonely:
        lonely.run("%load_ext oci_jupyter")
        run = lonely.run("%%oci\nanything")
    assert run.status == "ok"
    assert "Cannot reach the Jupyter server" in run.text


def test_find_server_picks_the_kernels_parent(
    scripted_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oci_jupyter.client import find_server

    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(scripted_server.runtime_dir))
    monkeypatch.delenv("OCI_SERVER_URL", raising=False)
    found = find_server(parent_pid=scripted_server.process.pid)
    assert found.url == scripted_server.url
    assert found.token == scripted_server.token
    assert found.source == f"server pid {scripted_server.process.pid}"


@pytest.mark.model
def test_real_model_writes_and_runs_code(tmp_path: Path, bundled_model: Path) -> None:
    oci: dict[str, Any] = {"engine": "llamacpp", "n_ctx": 4096, "hub_download": False}
    with jupyter_server(tmp_path, oci) as server, ipykernel(server.kernel_env()) as real:
        real.run("%load_ext oci_jupyter")
        run = real.run(
            "%%oci --temperature 0\n"
            "Create a list named `squares` with the squares of the integers 1 to 10 "
            "and print it."
        )
        assert run.status == "ok"
        assert "success" in run.final_markdown[-1], run.text
        assert real.value("squares") == "[1, 4, 9, 16, 25, 36, 49, 64, 81, 100]"
