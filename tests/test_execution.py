"""InKernelExecutor in a real ipykernel: what the model reads of what the code showed.

Rich outputs (images, matplotlib figures, HTML) reach the cell as they are and the model as
words; never as base64.
"""

from __future__ import annotations

import ast
import base64
import json
import re
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from oci_jupyter.execution import TIMES, describe_display, html_text, image_size

from .kernels import CellRun, Kernel, ipykernel
from .servers import REPO

X = TIMES  # the sign between an image's width and height


def png(width: int, height: int) -> bytes:
    """A valid grey PNG of this size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(width) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def jpeg_header(width: int, height: int) -> bytes:
    """The start of a JPEG: SOI, an APP0 (JFIF) segment, then a baseline frame header."""
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"
    return (
        b"\xff\xd8"
        + b"\xff\xe0"
        + struct.pack(">H", len(app0) + 2)
        + app0
        + b"\xff\xc0"
        + struct.pack(">H", len(sof) + 2)
        + sof
    )


# ---- pure: sizes and texts ---------------------------------------------------------------------
def test_png_size_from_base64_and_bytes() -> None:
    data = png(640, 480)
    assert image_size("image/png", base64.b64encode(data).decode()) == f"640{X}480"
    assert image_size("image/png", data) == f"640{X}480"
    # base64 folded into lines of 76, as older encoders write it
    folded = base64.encodebytes(data).decode()
    assert "\n" in folded
    assert image_size("image/png", folded) == f"640{X}480"


def test_jpeg_and_gif_sizes_from_their_headers() -> None:
    jpeg = jpeg_header(1024, 768) + b"\xff\xd9"
    assert image_size("image/jpeg", base64.b64encode(jpeg).decode()) == f"1024{X}768"
    gif = b"GIF89a" + struct.pack("<HH", 32, 16) + b"\x00" * 8
    assert image_size("image/gif", base64.b64encode(gif).decode()) == f"32{X}16"


def test_size_from_metadata_when_the_header_says_nothing() -> None:
    meta = {"image/png": {"width": 300, "height": 200}}
    assert image_size("image/png", "bm90IGEgcG5n", meta) == f"300{X}200"
    flat = {"width": 300, "height": 200}
    assert image_size("image/png", "bm90IGEgcG5n", flat) == f"300{X}200"
    assert image_size("image/png", "bm90IGEgcG5n") is None
    assert image_size("image/png", "not base64 at all!") is None


def test_svg_size_from_its_root_tag() -> None:
    svg = (
        '<?xml version="1.0"?>'
        '<svg xmlns="http://www.w3.org/2000/svg" width="460.8pt" height="345.6pt">'
    )
    assert image_size("image/svg+xml", svg) == f"461{X}346"


def test_html_becomes_its_text_without_tags_scripts_or_styles() -> None:
    markup = (
        "<style>td {color: red}</style><table><tr><th>region</th><th>units</th></tr>"
        "<tr><td>north</td><td>3</td></tr></table><script>alert('x')</script>&lt;ok&gt;"
    )
    text = html_text(markup)
    assert text.splitlines() == ["region units", "north 3", "<ok>"]


def test_describe_display_never_gives_the_bytes() -> None:
    data = base64.b64encode(png(10, 10)).decode()
    shown = describe_display({"image/png": data, "text/plain": "<Figure size 640x480>"})
    assert getattr(shown, "size", None) == f"10{X}10"
    widget = describe_display({"application/vnd.jupyter.widget-view+json": {"model_id": "abc"}})
    assert widget == "(displayed: application/vnd.jupyter.widget-view+json)"
    html_only = describe_display(
        {"text/html": "<b>bold</b> text", "text/plain": "<IPython.core.display.HTML object>"}
    )
    assert html_only == "bold text"  # the placeholder text/plain says nothing
    assert describe_display({"text/plain": "[1, 2]", "text/html": "<i>x</i>"}) == "[1, 2]"
    long = describe_display({"text/html": "<p>" + "word " * 1000 + "</p>"})
    assert isinstance(long, str)
    assert len(long) < 700
    assert "characters omitted" in long


# ---- in a real kernel --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    import os

    env = dict(os.environ, PYTHONPATH=str(REPO))
    with ipykernel(env) as running:
        setup = "from oci_jupyter.execution import InKernelExecutor\nimport dataclasses, json"
        assert running.run(setup).status == "ok"
        yield running


def run_generated(kernel: Kernel, code: str) -> tuple[dict[str, Any], CellRun]:
    """Run code as %%oci does; the outcome, and what the cell showed."""
    cell = kernel.run(f"_outcome = InKernelExecutor(get_ipython()).run({code!r})")
    assert cell.status == "ok", cell.text
    text = kernel.value("json.dumps(dataclasses.asdict(_outcome))")
    return json.loads(ast.literal_eval(text)), cell


def displayed_types(cell: CellRun) -> list[str]:
    return [
        mime
        for m in cell.messages
        if m["header"]["msg_type"] in ("display_data", "execute_result")
        for mime in m["content"]["data"]
    ]


PNG_CODE = """\
import base64
from IPython.display import Image, display
print("before")
display(Image(data=base64.b64decode({data!r})))
print("after")
"""


def test_a_displayed_png_is_summarised_in_order_and_still_shown(kernel: Kernel) -> None:
    data = base64.b64encode(png(640, 480)).decode()
    outcome, cell = run_generated(kernel, PNG_CODE.format(data=data))
    assert outcome["status"] == "ok"
    assert outcome["output"] == f"before\na figure was displayed: 1 image, 640{X}480\nafter\n"
    assert "iVBOR" not in json.dumps(outcome)  # no base64 for the model
    assert "image/png" in displayed_types(cell)  # the user still sees the image


def test_two_images_in_a_row_share_a_line(kernel: Kernel) -> None:
    small, large = (base64.b64encode(png(w, h)).decode() for w, h in ((20, 10), (300, 200)))
    code = (
        "import base64\nfrom IPython.display import Image, display\n"
        f"display(Image(data=base64.b64decode({small!r})))\n"
        f"display(Image(data=base64.b64decode({large!r})))\n"
    )
    outcome, _ = run_generated(kernel, code)
    assert outcome["output"] == f"a figure was displayed: 2 images, 20{X}10, 300{X}200\n"


def test_a_matplotlib_figure_shown_when_the_code_ends(kernel: Kernel) -> None:
    pytest.importorskip("matplotlib")
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nprint('drawn')\n"
    outcome, cell = run_generated(kernel, code)
    assert outcome["status"] == "ok", outcome
    figure = rf"drawn\na figure was displayed: 1 image, \d+{X}\d+\n"
    assert re.fullmatch(figure, outcome["output"])
    assert "image/png" in displayed_types(cell)
    assert "iVBOR" not in outcome["output"]


def test_html_and_rich_results_become_text(kernel: Kernel) -> None:
    code = (
        "from IPython.display import HTML, display\n"
        "display(HTML('<table><tr><td>north</td><td>3</td></tr></table>'))\n"
        "display({'text/html': '<p>only <b>html</b></p>'}, raw=True)\n"
        "class Pretty:\n"
        "    def _repr_html_(self):\n"
        "        return '<i>a pretty thing</i>'\n"
        "Pretty()\n"
    )
    outcome, cell = run_generated(kernel, code)
    assert outcome["output"] == "north 3\nonly html\na pretty thing\n"
    assert "text/html" in displayed_types(cell)


def test_the_last_expression_is_read_once(kernel: Kernel) -> None:
    outcome, cell = run_generated(kernel, "print('six times seven')\n6 * 7")
    assert outcome["output"] == "six times seven\n42\n"
    results = [m for m in cell.messages if m["header"]["msg_type"] == "execute_result"]
    assert results[0]["content"]["data"]["text/plain"] == "42"  # shown as a result, as usual


def test_errors_keep_what_was_displayed_before(kernel: Kernel) -> None:
    data = base64.b64encode(png(8, 8)).decode()
    code = (
        "import base64\nfrom IPython.display import Image, display\n"
        f"display(Image(data=base64.b64decode({data!r})))\n1 / 0\n"
    )
    outcome, _ = run_generated(kernel, code)
    assert outcome["status"] == "error"
    assert outcome["ename"] == "ZeroDivisionError"
    assert outcome["output"] == f"a figure was displayed: 1 image, 8{X}8\n"


def test_the_hooks_are_gone_after_the_run(kernel: Kernel) -> None:
    run_generated(kernel, "from IPython.display import display\ndisplay('x')")
    assert kernel.value("'publish' in vars(get_ipython().display_pub)") == "False"
    assert kernel.value("'compute_format_data' in vars(get_ipython().displayhook)") == "False"
    # Displays after the run are not heard by a finished run.
    cell = kernel.run("from IPython.display import display\ndisplay('later')")
    assert "'later'" in cell.text
    assert kernel.value("_outcome.output") == "\"'x'\\n\""


def test_a_silent_run_reports_the_values_it_assigned(kernel: Kernel) -> None:
    # %%oci's executor reads its own namespace: the model sees what the code computed.
    outcome, _ = run_generated(
        kernel, "totals = {'a': 3, 'b': 9}\nbest = max(totals, key=totals.get)\n_x = 1"
    )
    assert (outcome["status"], outcome["output"]) == ("ok", "")
    assert [tuple(v) for v in outcome["values"]] == [
        ("totals", "{'a': 3, 'b': 9}"),
        ("best", "'b'"),
    ]
    printed, _ = run_generated(kernel, "best = 'a'\nprint(best)")
    assert (printed["output"], printed["values"]) == ("a\n", [])
