"""%%oci in a real ipykernel, talking to a real Jupyter server (scripted engine and real model)."""

from __future__ import annotations

import ast
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from oci_jupyter.execution import TIMES
from oci_jupyter.loop import Budgets, Finished, Turn
from oci_jupyter.magic import (
    STEPS_MIME,
    budgets_for,
    heading,
    inserted_cell,
    parse_options,
    summary_line,
)
from oci_jupyter.prompts import REQUEST_HINT
from oci_jupyter.types import ExecutionOutcome

from .kernels import CellRun, Kernel, ipykernel
from .magic_kernel import REGISTRY, Script, in_order, shown
from .servers import RunningServer, jupyter_server

pytestmark = pytest.mark.usefixtures("fresh_conversation")

FIXED = "Here it is:\n```python\nvalues = [n * n for n in range(1, 6)]\nprint(sum(values))\n```"
BROKEN = "```python\nvalues = [n * n for n in rnage(1, 6)]\nprint(sum(values))\n```"
STEP_1 = "First the data:\n```python\ndata = [4, 8, 15]\nprint('count', len(data))\n```"
STEP_2 = "```python\nprint('total', sum(data))\n```"
ANSWER = "The list has **3 items** and they sum to 27."
X = TIMES  # the sign between an image's width and height


def remembered(kernel: Kernel) -> list[dict[str, str]]:
    value = kernel.value(f"__import__('json').dumps({REGISTRY}.history)")
    return list(json.loads(ast.literal_eval(value)))


def finish(kernel: Kernel, msg_id: str, seen: list[dict[str, Any]]) -> CellRun:
    """The rest of a cell started with Kernel.start, once it is idle again."""
    seen = seen + kernel.iopub_until(
        lambda m: (
            m["header"]["msg_type"] == "status"
            and m["parent_header"].get("msg_id") == msg_id
            and m["content"]["execution_state"] == "idle"
        )
    )
    reply = kernel.reply(msg_id, timeout=30)
    return CellRun(reply, [m for m in seen if m["parent_header"].get("msg_id") == msg_id])


# ---- the loop: run, read, answer -------------------------------------------------------------
def test_success_then_answer(kernel: Kernel, script: Script) -> None:
    script.set(["```python\nprint(6 * 7)\n```", "Six times seven is **42**."])
    run = kernel.run("%%oci\nwhat is six times seven?")
    assert run.status == "ok"
    assert run.final_markdown[-1] == "Six times seven is **42**."  # the answer comes last
    assert run.final_markdown[-2] == "✅ **oci: answered after 1 step, 2 replies.**"
    in_order(shown(run), "print(6 * 7)", "42\n", "✅ **oci: answered", "Six times seven")
    _, second = script.prompts
    assert second[-2] == {"role": "assistant", "content": "```python\nprint(6 * 7)\n```"}
    assert second[-1]["content"].startswith("Execution result:\n42\n")
    assert kernel.value(f"{REGISTRY}.last_result.answer") == "'Six times seven is **42**.'"


def test_two_steps_run_in_order_and_the_answer_comes_last(kernel: Kernel, script: Script) -> None:
    script.set([STEP_1, STEP_2, ANSWER])
    run = kernel.run("%%oci\nhow many items are in the data, and what do they sum to?")
    assert run.status == "ok"
    assert run.final_markdown[-1] == ANSWER
    assert run.final_markdown[-2] == "✅ **oci: answered after 2 steps, 3 replies.**"
    in_order(
        shown(run),
        "data = [4, 8, 15]",  # step 1's code, then its output
        "count 3\n",
        "**oci · step 2**",  # step 2's heading, code, output
        "print('total', sum(data))",
        "total 27\n",
        "✅ **oci: answered after 2 steps",
        ANSWER,
    )
    assert kernel.value("data") == "[4, 8, 15]"  # in the user's namespace
    _, second, third = script.prompts
    assert second[-1]["content"].startswith("Execution result:\ncount 3\n")
    assert third[-1]["content"].startswith("Execution result:\ntotal 27\n")
    assert third[-4]["content"] == STEP_1  # the model reads every step's result


def test_a_failed_attempt_is_refined_in_the_same_step(kernel: Kernel, script: Script) -> None:
    script.set([BROKEN, FIXED, "The squares of 1..5 sum to 55."])
    run = kernel.run("%%oci\nsum the squares of 1..5")
    assert run.status == "ok"
    assert "NameError" in run.text  # the failing attempt's traceback is shown in the cell
    text = shown(run)
    in_order(text, "rnage", "NameError", "**oci · attempt 2**", "range(1, 6)", "55\n")
    assert run.final_markdown[-2] == "✅ **oci: answered after 1 step, 3 replies.**"
    assert kernel.value("values") == "[1, 4, 9, 16, 25]"

    first, second, _ = script.prompts
    assert first[0]["role"] == "system"
    assert first[-1]["content"].endswith(f"sum the squares of 1..5\n\n{REQUEST_HINT}")
    feedback = second[-1]["content"]
    assert second[-2] == {"role": "assistant", "content": BROKEN}
    assert feedback.startswith("Execution result: the code raised an error.")
    assert "NameError: name 'rnage' is not defined" in feedback
    assert "\x1b[" not in feedback  # ANSI colours stripped


def test_the_step_budget_stops_the_request(kernel: Kernel, script: Script) -> None:
    script.set([STEP_1, STEP_2, ANSWER])
    run = kernel.run("%%oci --steps 1\nsum the data")
    summary = run.final_markdown[-1]
    assert summary.startswith("✅ **oci: ran after 1 step, 2 replies.**")
    assert "step budget" in summary
    assert "*not run: the step budget is used up*" in run.final_markdown
    assert "count 3" in run.text
    assert "total 27" not in run.text  # step 2 was not run
    assert len(script.prompts) == 2


def test_no_read_stops_at_the_first_success(kernel: Kernel, script: Script) -> None:
    script.set([STEP_1, "never asked"])
    run = kernel.run("%%oci --no-read\ncount the data")
    assert run.final_markdown[-1] == "✅ **oci: ran after 1 step, 1 reply.**"
    assert "count 3" in run.text
    assert len(script.prompts) == 1


def test_insert_puts_every_steps_code_below(kernel: Kernel, script: Script) -> None:
    script.set([STEP_1, STEP_2, ANSWER])
    run = kernel.run("%%oci --insert\nsum the data")
    payloads = [p for p in run.reply["content"]["payload"] if p["source"] == "set_next_input"]
    # JupyterLab inserts the first set_next_input payload only: one cell, a comment per step.
    assert len(payloads) == 1
    assert payloads[0]["text"] == (
        "# oci · step 1\ndata = [4, 8, 15]\nprint('count', len(data))\n\n"
        "# oci · step 2\nprint('total', sum(data))\n"
    )
    assert payloads[0]["replace"] is False
    assert "The code of the 2 steps is in the cells below." in run.final_markdown[-3]
    assert run.final_markdown[-1] == ANSWER
    # And the steps apart, for JupyterLab to make one cell of each (src/magicsteps.ts).
    (marker,) = [
        m["content"]["data"][STEPS_MIME]
        for m in run.messages
        if m["header"]["msg_type"] == "display_data" and STEPS_MIME in m["content"]["data"]
    ]
    assert marker == {
        "combined": payloads[0]["text"],
        "cells": ["data = [4, 8, 15]\nprint('count', len(data))\n", "print('total', sum(data))\n"],
    }


def test_the_reply_is_cut_where_its_code_block_closes(
    kernel: Kernel, script: Script, scripted_server: RunningServer
) -> None:
    tail = "and now a long story " * 500  # 2000 words after the code: 4 s of streaming
    script.set(["```python\nprint('cut here')\n```\n" + tail, "Printed it."])
    cancelled_before = cancellations(scripted_server)
    run = kernel.run("%%oci --max-tokens 2000\nprint something")
    assert "cut here" in run.text
    assert "long story" not in shown(run)
    second = script.prompts[1]
    assert second[-2] == {"role": "assistant", "content": "```python\nprint('cut here')\n```"}
    # The kernel closed the stream once the block closed: the server cancelled the rest.
    deadline = time.monotonic() + 10
    while cancellations(scripted_server) == cancelled_before:
        assert time.monotonic() < deadline, scripted_server.log.read_text()[-2000:]
        time.sleep(0.05)


def cancellations(server: RunningServer) -> int:
    """Generations the server logged as cancelled (its client closed the stream)."""
    log = server.log.read_text(errors="replace")
    return len(re.findall(r"oci: \S+ cancelled, ", log))


# ---- context and memory -------------------------------------------------------------------------
def test_context_has_variables_and_recent_cells(kernel: Kernel, script: Script) -> None:
    kernel.run("import pandas as pd\nsales = pd.DataFrame({'region': ['n', 's'], 'units': [3, 4]})")
    script.set(["```python\nprint(sales.units.sum())\n```", "7 units."])
    run = kernel.run("%%oci\ntotal units sold")
    assert "7" in run.text
    prompt = script.prompts[0][-1]["content"]
    # (pandas 2 calls the text column's dtype "object", pandas 3 "str")
    assert "- sales: DataFrame, shape (2, 2), columns: region (" in prompt
    assert "), units (int64)" in prompt
    assert "sales = pd.DataFrame(" in prompt  # the cell that made it


def test_memory_carries_across_cells_and_reset_clears_it(kernel: Kernel, script: Script) -> None:
    script.set(
        [
            "```python\nnumbers = [3, 1, 2]\n```",
            "Made the list.",
            "```python\nprint(sorted(numbers))\n```",
            "Sorted: 1, 2, 3.",
        ]
    )
    kernel.run("%%oci\nmake a list of three numbers")
    run = kernel.run("%oci now sort it")
    assert "[1, 2, 3]" in run.text
    second_request = script.prompts[2]
    contents = [m["content"] for m in second_request]
    assert "make a list of three numbers" in contents  # the earlier request, in the history
    assert "```python\nnumbers = [3, 1, 2]\n```" in contents
    assert "Made the list." in contents
    kernel.run("%oci reset")
    script.set(["no code needed"])
    kernel.run("%oci hello")
    assert all("make a list" not in m["content"] for m in script.prompts[0])


def test_memory_alternates_roles(kernel: Kernel, script: Script) -> None:
    # --no-read ends on a result, a user turn; the next request is a user turn too.
    script.set(["```python\nx = 1\nprint(x)\n```", "```python\nprint(x + 1)\n```", "Two."])
    kernel.run("%%oci --no-read\nset x")
    kernel.run("%%oci\nadd one")
    history = remembered(kernel)
    roles = [m["role"] for m in history]
    assert roles == ["user", "assistant"] * (len(roles) // 2)
    assert history[0]["content"] == "set x"
    assert history[2]["content"].startswith("Execution result:\n1\n")
    assert history[2]["content"].endswith("add one")  # the result and the request, joined
    assert history[-1]["content"] == "Two."
    sent = [m["role"] for m in script.prompts[1]]
    assert sent == ["system", *(["user", "assistant"] * ((len(sent) - 2) // 2)), "user"]


def test_memory_stays_bounded_by_the_models_window(kernel: Kernel, script: Script) -> None:
    # The scripted engine counts words: these long requests cost one token each, yet their
    # characters would pile up without a bound (4096 tokens * 3 characters).
    requests = [f"remember {'z' * 5000}{n}" for n in range(4)]
    script.set(["Noted."] * len(requests))
    for request in requests:
        assert "Noted." in kernel.run(f"%%oci\n{request}").text
    history = remembered(kernel)
    assert sum(len(m["content"]) for m in history) <= 4096 * 3
    assert [m["content"] for m in history] == [requests[2], "Noted.", requests[3], "Noted."]


# ---- what runs, what shows -----------------------------------------------------------------------
PNG_CODE = """\
import struct, zlib
from IPython.display import Image, display
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
rows = b"".join(b"\\x00" + bytes(640) for _ in range(480))
header = struct.pack(">IIBBBBB", 640, 480, 8, 0, 0, 0, 0)
png = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
display(Image(data=png + chunk(b"IEND", b"")))
"""


def test_a_displayed_image_reaches_the_model_as_words(kernel: Kernel, script: Script) -> None:
    script.set([f"```python\n{PNG_CODE}```", f"A grey 640{X}480 picture."])
    run = kernel.run("%%oci\nshow a grey picture")
    assert any(
        "image/png" in m["content"].get("data", {})
        for m in run.messages
        if m["header"]["msg_type"] == "display_data"
    )  # the user sees the image
    feedback = script.prompts[1][-1]["content"]
    assert feedback.startswith(f"Execution result:\na figure was displayed: 1 image, 640{X}480")
    assert "iVBOR" not in json.dumps(script.prompts)  # no base64 for the model
    assert run.final_markdown[-1] == f"A grey 640{X}480 picture."


def test_interpolation_no_exec_and_insert(kernel: Kernel, script: Script) -> None:
    kernel.run("target = 'parquet'")
    script.set(["```python\nwritten = True\n```"])
    run = kernel.run("%%oci --no-exec --insert\nsave the frame as {target}")
    assert "save the frame as parquet" in script.prompts[0][-1]["content"]
    assert run.final_markdown[-1].startswith("📝 **oci: code written, not run (--no-exec).**")
    assert kernel.value("'written' in globals()") == "False"  # --no-exec ran nothing
    payload = run.reply["content"]["payload"]
    assert payload[0]["source"] == "set_next_input"
    assert payload[0]["text"] == "written = True\n"
    assert len(script.prompts) == 1


def test_attempt_budget_and_time_limit(kernel: Kernel, script: Script) -> None:
    script.set(
        [
            "```python\nimport time\ntime.sleep(30)\n```",
            "```python\nimport time\ntime.sleep(40)\n```",
        ]
    )
    started = time.monotonic()
    run = kernel.run("%%oci --turns 2 --timeout 1\nwait a bit")
    assert time.monotonic() - started < 15
    summary = run.final_markdown[-1]
    assert summary.startswith("❌ **oci: failed after 1 step, 2 replies.**")
    assert "Still failing after 2 attempts" in summary
    assert "(the attempt budget ran out)" in summary
    feedback = script.prompts[1][-1]["content"]
    assert "did not finish within 1 seconds" in feedback
    assert len(script.prompts) == 2
    assert kernel.run("print('kernel alive')").text.strip() == "kernel alive"


def test_an_interrupted_run_ends_the_request(kernel: Kernel, script: Script) -> None:
    script.set(
        ["```python\nimport time\nprint('started', flush=True)\ntime.sleep(30)\n```", "unused"]
    )
    msg_id = kernel.start("%%oci\nwait for a while")
    seen = kernel.iopub_until(
        lambda m: m["header"]["msg_type"] == "stream" and "started" in m["content"]["text"]
    )
    kernel.manager.interrupt_kernel()
    run = finish(kernel, msg_id, seen)
    assert run.status == "ok"
    assert run.final_markdown[-1].startswith("⏹ **oci: stopped after 1 step, 1 reply.**")
    assert len(script.prompts) == 1  # the model is not asked about an interrupted run
    assert kernel.run("print(1 + 1)").text.strip() == "2"


def test_interrupt_cancels_the_request_on_the_server(
    kernel: Kernel, script: Script, scripted_server: RunningServer
) -> None:
    script.set(["word " * 3000])  # ~6 s of streaming at 2 ms a token
    msg_id = kernel.start("%%oci\nwrite a lot")
    seen = kernel.iopub_until(lambda m: m["header"]["msg_type"] == "update_display_data")
    assert scripted_server.get("oci", "status")["running_requests"] == 1
    kernel.manager.interrupt_kernel()
    run = finish(kernel, msg_id, seen)
    assert run.status == "ok"
    summary = run.final_markdown[-1]
    assert summary.startswith("⏹ **oci: stopped after 0 steps, 1 reply.**")
    assert "Interrupted while the model was writing." in summary
    assert run.final_markdown[0].startswith("word word")
    assert not run.final_markdown[0].endswith("▌")  # the reply as far as it came, finished
    deadline = time.monotonic() + 5
    while scripted_server.get("oci", "status")["running_requests"]:
        assert time.monotonic() < deadline, "the server is still generating"
        time.sleep(0.05)
    assert kernel.run("print(1 + 1)").text.strip() == "2"


# ---- %oci fix ------------------------------------------------------------------------------------
def test_oci_fix_repairs_the_last_failing_cell_and_explains(kernel: Kernel, script: Script) -> None:
    failed = kernel.run("total = prices * 2")
    assert failed.status == "error"
    explanation = "`prices` was never defined; the fix defines it before `total` uses it."
    script.set(["```python\nprices = 21\ntotal = prices * 2\nprint(total)\n```", explanation])
    run = kernel.run("%oci fix")
    assert kernel.value("total") == "42"
    assert run.final_markdown[-1] == explanation  # what was wrong, last
    assert run.final_markdown[-2] == "✅ **oci: fixed after 1 step, 2 replies.**"
    request = script.prompts[0][-1]["content"]
    assert "This cell failed:\n```python\ntotal = prices * 2\n```" in request
    assert "NameError: name 'prices' is not defined" in request
    assert script.prompts[1][-1]["content"].startswith("Execution result:\n42\n")
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
            "`width` was missing.",
        ]
    )
    run = kernel.run("%oci fix")
    assert "*not run: same as before*" in run.final_markdown
    assert "**oci · attempt 2**" in shown(run)
    assert kernel.value("area") == "6"
    assert "same code as the cell" in script.prompts[1][-1]["content"]
    assert run.final_markdown[-1] == "`width` was missing."


def test_oci_fix_sends_the_cell_that_defines_what_the_failing_cell_reads(
    kernel: Kernel, script: Script
) -> None:
    # 35 cells between the definition and the failure: beyond the 30 most recent cells a
    # request considers, yet the definition must reach the model.
    assert kernel.run("tax_rate = '0.2'  # a string: the root cause").status == "ok"
    for i in range(35):
        assert kernel.run(f"unrelated_{i} = {i}").status == "ok"
    assert kernel.run("gross = 100 * (1 + tax_rate)").status == "error"
    script.set(["```python\ngross = 100 * (1 + float(tax_rate))\nprint(gross)\n```", "Fixed."])
    kernel.run("%oci fix")
    assert kernel.value("gross") == "120.0"
    request = script.prompts[0][-1]["content"]
    assert "tax_rate = '0.2'  # a string: the root cause" in request
    assert "unrelated_0 = 0" not in request
    context, _, failing = request.partition("Request:\n")
    assert "gross = 100 * (1 + tax_rate)" not in context  # shown once, in the request
    assert "This cell failed:\n```python\ngross = 100 * (1 + tax_rate)\n```" in failing


# ---- options and messages (no kernel needed for the pure parts) ---------------------------------
def test_budgets_come_from_the_options_then_the_server_then_fallbacks() -> None:
    server = {"max_attempts": 5, "max_steps": 2, "max_replies": 12, "read_results": False}
    assert budgets_for(parse_options(""), server) == Budgets(attempts=5, steps=2, replies=12)
    chosen = budgets_for(parse_options("--turns 1 --steps 6 --replies 9"), server)
    assert (chosen.attempts, chosen.steps, chosen.replies) == (1, 6, 9)
    fallback = budgets_for(parse_options(""), None)
    assert (fallback.attempts, fallback.steps, fallback.replies) == (3, 4, 8)


def test_headings_and_summary_lines() -> None:
    assert heading(1, 1) == ""
    assert heading(2, 1) == "oci · step 2"
    assert heading(1, 2) == "oci · attempt 2"
    assert heading(3, 2) == "oci · step 3 · attempt 2"
    turn = Turn(1, reply="x", code="x = 1\n", outcome=ExecutionOutcome("ok"), step=1, attempt=1)
    ran = Finished("success", [turn, Turn(2, reply="ok")], "Answered.", answer="ok")
    assert summary_line(ran, "chat") == "✅ **oci: answered after 1 step, 2 replies.**"
    assert summary_line(ran, "fix") == "✅ **oci: fixed after 1 step, 2 replies.**"
    replies = Finished(
        "failed", [turn], "Stopped at the reply budget (1 replies).", budget="replies"
    )
    assert summary_line(replies, "chat") == (
        "❌ **oci: failed after 1 step, 1 reply.** Stopped at the reply budget (1 replies)."
    )
    assert inserted_cell(["a = 1\n"]) == "a = 1\n"
    assert inserted_cell(["a = 1\n", "b = 2"]) == "# oci · step 1\na = 1\n\n# oci · step 2\nb = 2\n"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%%oci --bogus\ndo it", "unknown option --bogus"),
        ("%%oci\n   ", "say what you want"),
        ("%%oci --turns 0\nx", "--turns must be at least 1"),
        ("%%oci --steps 0\nx", "--steps must be at least 1"),
        ("%%oci --replies 0\nx", "--replies must be at least 1"),
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
    help_text = run.text + json.dumps(run.reply["content"])
    for option in ("--no-exec", "--steps", "--replies", "--no-read"):
        assert option in help_text


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


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Any]:
    """Every HTTP request the client would send (none leaves this process), with no Jupyter
    server to find as the kernel's parent: OCI_SERVER_URL is the only way."""
    import httpx

    requests: list[Any] = []

    def refuse(transport: Any, request: Any) -> Any:
        requests.append(request)
        raise httpx.ConnectError("no network in this test", request=request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", refuse)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("OCI_TOKEN", "the-jupyter-token")
    return requests


@pytest.mark.parametrize(
    "url",
    [
        "http://jupyter.example.com:8888/",
        "http://192.0.2.7:8888/",
        "http://[2001:db8::7]:8888/",
        "http://0.0.0.0:8888/",
        "ftp://127.0.0.1/",
        "127.0.0.1:8888",
    ],
)
def test_the_token_never_goes_to_an_unsafe_server_url(
    sent: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
) -> None:
    from types import SimpleNamespace

    from oci_jupyter.magic import OCIMagics

    monkeypatch.setenv("OCI_SERVER_URL", url)
    shell = SimpleNamespace(
        events=SimpleNamespace(register=lambda *args: None),
        var_expand=lambda text, depth=0: text,
        configurables=[],
    )

    OCIMagics(shell).oci("", "what is 2 + 2?")

    said = capsys.readouterr().out
    assert sent == []
    assert f"OCI_SERVER_URL={url!r} is refused" in said
    assert "https://" in said


@pytest.mark.parametrize(
    "url",
    [
        "https://jupyter.example.com/",
        "http://127.0.0.1:8888/",
        "http://127.3.2.1:8888/lab",
        "http://[::1]:8888/",
        "http://localhost:8888/",
    ],
)
def test_https_or_this_machine_is_a_server_url(
    sent: list[Any], monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    from oci_jupyter.client import ModelClient, ServerUnavailable, find_server

    monkeypatch.setenv("OCI_SERVER_URL", url)
    server = find_server(parent_pid=-1)
    assert (server.url, server.token, server.source) == (url, "the-jupyter-token", "OCI_SERVER_URL")
    with pytest.raises(ServerUnavailable, match="Cannot reach"):
        ModelClient(server).status()
    assert [r.headers["Authorization"] for r in sent] == ["token the-jupyter-token"]


@pytest.mark.model
def test_real_model_reads_the_result_and_answers(tmp_path: Path, bundled_model: Path) -> None:
    oci: dict[str, Any] = {"engine": "llamacpp", "n_ctx": 4096, "hub_download": False}
    with jupyter_server(tmp_path, oci) as server, ipykernel(server.kernel_env()) as real:
        real.run("%load_ext oci_jupyter")
        assert real.run("values = [3, 18, 7, 25, 12, 30]").status == "ok"
        run = real.run("%%oci --temperature 0 --steps 3\nhow many items of values are above 10?")
        assert run.status == "ok"
        answer = ast.literal_eval(real.value(f"{REGISTRY}.last_result.answer"))
        status = ast.literal_eval(real.value(f"{REGISTRY}.last_result.status"))
        assert status == "success", run.text
        assert "4" in answer, run.text
        assert run.final_markdown[-1] == answer  # shown last
        assert real.value("values") == "[3, 18, 7, 25, 12, 30]"
