"""Running generated code for the Python drivers of the loop.

``InKernelExecutor`` runs code inside the current IPython kernel, in the user's namespace,
exactly as if the user had run a cell: outputs appear in the cell, variables persist. The text
of what it printed, displayed, returned or raised comes back as an :class:`ExecutionOutcome`.

Rich outputs reach the model as words, never as their bytes: a displayed image (a matplotlib
figure included, which the inline backend displays when the code ends) becomes "a figure was
displayed: 1 image, 640x480" (the x being :data:`TIMES`), HTML becomes its text (see
:func:`describe_display`).
"""

from __future__ import annotations

import base64
import binascii
import html
import io
import json
import os
import re
import signal
import struct
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from html.parser import HTMLParser
from typing import Any, TextIO

from .prompts import clip, strip_ansi
from .prompts.values import assigned_names, lookup_values
from .types import ExecutionOutcome

TIMES = "\N{MULTIPLICATION SIGN}"
"""Between an image's width and height: "640x480" with this sign in place of the x."""
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml")
DISPLAY_CHARS = 600
"""The longest text an HTML, Markdown, LaTeX or JSON display contributes (text/plain counts as
printed text: the whole output is clipped when it goes back to the model)."""
_PLACEHOLDER = re.compile(r"<[\w.]+ (?:object|at 0x)[^>]*>")
"""The text/plain of objects without a useful repr, e.g. ``<IPython.core.display.HTML
object>``: it says nothing, the HTML beside it says more."""


class _Transcript:
    """What a run showed, in order, as text for the model: what it printed, and a line for
    what it displayed. Images displayed one after another share one line."""

    def __init__(self) -> None:
        self._parts: list[str | list[str | None]] = []

    def write(self, text: str) -> None:
        if self._parts and isinstance(self._parts[-1], str):
            self._parts[-1] += text
        else:
            self._parts.append(text)

    def show(self, data: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> None:
        """A display (or the rich result of the last expression)."""
        shown = describe_display(data, metadata)
        if isinstance(shown, _Image):
            if self._parts and isinstance(self._parts[-1], list):
                self._parts[-1].append(shown.size)
            else:
                self._parts.append([shown.size])
        elif shown:
            self._line(shown)

    def _line(self, text: str) -> None:
        if self._parts and isinstance(self._parts[-1], str) and not self._parts[-1].endswith("\n"):
            self.write("\n")
        self.write(text if text.endswith("\n") else text + "\n")

    def getvalue(self) -> str:
        parts: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                parts.append(part)
                continue
            if parts and not parts[-1].endswith("\n"):
                parts.append("\n")
            parts.append(_figure_line(part))
        return "".join(parts)


class _Tee(io.TextIOBase):
    """Writes go to the cell as usual and into the transcript for the model."""

    def __init__(self, target: TextIO, transcript: _Transcript) -> None:
        super().__init__()
        self._target = target
        self._transcript = transcript

    def write(self, text: str) -> int:
        self._transcript.write(text)
        return self._target.write(text)

    def flush(self) -> None:
        self._target.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, encoding, ... of the real stream
        return getattr(self._target, name)


class _Deadline:
    """Interrupts the main thread after ``seconds``, as Jupyter's interrupt button does."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.fired = False
        self._timer: threading.Timer | None = None

    def __enter__(self) -> _Deadline:
        if self.seconds and threading.current_thread() is threading.main_thread():
            self._timer = threading.Timer(self.seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def _fire(self) -> None:
        self.fired = True
        # A real SIGINT also wakes blocking calls such as time.sleep, unlike interrupt_main().
        os.kill(os.getpid(), signal.SIGINT)

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()


class InKernelExecutor:
    """Runs code in an IPython shell's user namespace, with a time limit."""

    def __init__(self, shell: Any, time_limit: float | None = 120.0) -> None:
        self.shell = shell
        self.time_limit = time_limit

    def run(self, code: str) -> ExecutionOutcome:
        transcript = _Transcript()
        started = time.monotonic()
        deadline = _Deadline(self.time_limit)
        shown_result: list[bool] = []
        try:
            with self._capture(transcript, shown_result), deadline:
                result = self.shell.run_cell(code, store_history=False, silent=False)
        except KeyboardInterrupt:
            # Arrived between the cell's end and the timer's cancel: the code itself finished.
            result = None
        seconds = time.monotonic() - started
        if result is not None and result.result is not None and not shown_result:
            transcript.write(_repr(result.result))
        output = transcript.getvalue()
        error = None
        if result is not None:
            error = result.error_before_exec or result.error_in_exec
        if error is None:
            values: tuple[tuple[str, str], ...] = ()
            if not output.strip():
                # Printed nothing: what it assigned is the result the model reads.
                values = lookup_values(self.shell.user_ns, assigned_names(code))
            return ExecutionOutcome("ok", output=output, seconds=seconds, values=values)
        if isinstance(error, KeyboardInterrupt):
            status = "timeout" if deadline.fired else "cancelled"
            return ExecutionOutcome(
                status, output=output, seconds=seconds, time_limit=self.time_limit
            )
        return ExecutionOutcome(
            "error",
            output=output,
            ename=type(error).__name__,
            evalue=str(error),
            traceback=self._traceback(error),
            seconds=seconds,
        )

    @contextmanager
    def _capture(self, transcript: _Transcript, shown_result: list[bool]) -> Iterator[None]:
        """Tee stdout/stderr, and hear what is displayed and what the last expression shows.

        The hooks sit on this shell's display publisher (``display()``, and the inline
        backend's figures when the code ends) and display hook (the ``Out`` of the last
        expression), as instance attributes that shadow their methods for the run only."""
        saved = sys.stdout, sys.stderr
        sys.stdout = _Tee(saved[0], transcript)  # type: ignore[assignment]
        sys.stderr = _Tee(saved[1], transcript)  # type: ignore[assignment]
        publisher = getattr(self.shell, "display_pub", None)
        hook = getattr(self.shell, "displayhook", None)
        undo: list[tuple[Any, str, Any]] = []

        def publish(data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
            if not kwargs.get("update") and isinstance(data, Mapping):
                _quietly(transcript.show, data, metadata)
            return original_publish(data, metadata, *args, **kwargs)

        def compute_format_data(value: Any) -> Any:
            formatted = original_compute(value)
            data, metadata = formatted if isinstance(formatted, tuple) else (formatted, None)
            if isinstance(data, Mapping) and data:
                shown_result.append(True)
                _quietly(transcript.show, data, metadata)
            return formatted

        if publisher is not None and callable(getattr(publisher, "publish", None)):
            original_publish = publisher.publish
            undo.append(_shadow(publisher, "publish", publish))
        if hook is not None and callable(getattr(hook, "compute_format_data", None)):
            original_compute = hook.compute_format_data
            undo.append(_shadow(hook, "compute_format_data", compute_format_data))
        try:
            yield
        finally:
            sys.stdout, sys.stderr = saved
            for target, name, before in reversed(undo):
                if before is _MISSING:
                    vars(target).pop(name, None)
                else:
                    setattr(target, name, before)

    def _traceback(self, error: BaseException) -> str:
        """IPython's own rendering (the user's frames only), without colours."""
        try:
            formatter = self.shell.InteractiveTB
            lines = formatter.structured_traceback(
                type(error), error, error.__traceback__, tb_offset=formatter.tb_offset
            )
            return strip_ansi("\n".join(lines))
        except Exception:
            import traceback

            return "".join(traceback.format_exception(error))


_MISSING = object()


def _shadow(target: Any, name: str, replacement: Any) -> tuple[Any, str, Any]:
    before = vars(target).get(name, _MISSING)
    setattr(target, name, replacement)
    return target, name, before


def _quietly(function: Any, *args: Any) -> None:
    """What the model reads must never break what the user sees."""
    with suppress(Exception):
        function(*args)


# ---- displays as text ---------------------------------------------------------------------------
class _Image:
    def __init__(self, size: str | None) -> None:
        self.size = size


def describe_display(
    data: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
) -> _Image | str:
    """A display's text for the model: an image's size, text/plain, or the text of HTML,
    Markdown, LaTeX or JSON; other kinds only by name. Never the bytes of an image."""
    for mime in IMAGE_TYPES:
        if mime in data:
            return _Image(image_size(mime, data[mime], metadata))
    plain = data.get("text/plain")
    if isinstance(plain, str) and plain.strip() and not _PLACEHOLDER.fullmatch(plain.strip()):
        return strip_ansi(plain)  # as if printed: clipped with the rest of the output
    markup = data.get("text/html")
    if isinstance(markup, str):
        text = html_text(markup)
        if text:
            return clip(text, DISPLAY_CHARS, DISPLAY_CHARS // 2 - 20)
    for mime in ("text/markdown", "text/latex"):
        value = data.get(mime)
        if isinstance(value, str) and value.strip():
            return clip(value.strip(), DISPLAY_CHARS, DISPLAY_CHARS // 2 - 20)
    if "application/json" in data:
        try:
            text = json.dumps(data["application/json"])
        except (TypeError, ValueError):
            text = ""
        if text:
            return clip(text, DISPLAY_CHARS, DISPLAY_CHARS // 2 - 20)
    kinds = ", ".join(sorted(m for m in data if m != "text/plain"))
    return f"(displayed: {kinds})" if kinds else ""


def _figure_line(sizes: list[str | None]) -> str:
    count = len(sizes)
    known = [s for s in sizes if s]
    line = f"a figure was displayed: {count} image{'s' if count != 1 else ''}"
    return line + (", " + ", ".join(known) if known else "") + "\n"


class _TextOfHTML(HTMLParser):
    _HIDDEN = frozenset({"script", "style", "head", "title"})
    _BREAKS = frozenset({"br", "p", "div", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag in self._BREAKS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN and self._hidden:
            self._hidden -= 1
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def html_text(markup: str) -> str:
    """The readable text of an HTML fragment: tags, scripts and styles gone, spaces folded."""
    parser = _TextOfHTML()
    try:
        parser.feed(markup)
        parser.close()
        text = "".join(parser.parts)
    except Exception:  # HTMLParser is lenient; this is for the odd assertion inside it
        text = html.unescape(re.sub(r"<[^>]*>", " ", markup))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def image_size(mime: str, value: Any, metadata: Mapping[str, Any] | None = None) -> str | None:
    """Width :data:`TIMES` height from the image's own header, else from the display's
    metadata."""
    size: tuple[int, int] | None = None
    if mime == "image/svg+xml":
        size = _svg_size(value if isinstance(value, str) else "")
    else:
        head = _image_bytes(value, 64 * 1024 if mime == "image/jpeg" else 64)
        size = {"image/png": _png_size, "image/jpeg": _jpeg_size, "image/gif": _gif_size}.get(
            mime, lambda _: None
        )(head)
    if size is None and metadata:
        described = metadata.get(mime)
        for source in (described if isinstance(described, Mapping) else {}, metadata):
            width, height = source.get("width"), source.get("height")
            if isinstance(width, int | float) and isinstance(height, int | float):
                size = int(width), int(height)
                break
    return f"{size[0]}{TIMES}{size[1]}" if size else None


def _image_bytes(value: Any, length: int) -> bytes:
    """The first ``length`` bytes of an image given as bytes or as base64 text."""
    if isinstance(value, bytes | bytearray):
        return bytes(value[:length])
    if not isinstance(value, str):
        return b""
    chars = re.sub(r"\s+", "", value[: length * 2])[: (length + 2) // 3 * 4]
    chars = chars[: len(chars) // 4 * 4]
    try:
        return base64.b64decode(chars)
    except (binascii.Error, ValueError):
        return b""


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _gif_size(data: bytes) -> tuple[int, int] | None:
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 10:
        return None
    width, height = struct.unpack("<HH", data[6:10])
    return int(width), int(height)


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""JPEG's start-of-frame markers (0xC4, 0xC8, 0xCC share the range but are not frames)."""


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    if data[:2] != b"\xff\xd8":
        return None
    index = 2
    while index + 4 <= len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            index += 2
            continue
        (length,) = struct.unpack(">H", data[index + 2 : index + 4])
        if marker in _SOF:
            if index + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return int(width), int(height)
        index += 2 + length
    return None


_SVG_TAG = re.compile(r"<svg\b[^>]*>", re.IGNORECASE | re.DOTALL)
_SVG_LENGTH = r'\b{}\s*=\s*["\']\s*([\d.]+)\s*(?:px|pt)?\s*["\']'


def _svg_size(markup: str) -> tuple[int, int] | None:
    tag = _SVG_TAG.search(markup[:4096])
    if tag is None:
        return None
    width = re.search(_SVG_LENGTH.format("width"), tag.group(0))
    height = re.search(_SVG_LENGTH.format("height"), tag.group(0))
    if width is None or height is None:
        return None
    return round(float(width.group(1))), round(float(height.group(1)))


def _repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:
        text = f"<unrepresentable {type(value).__name__}: {exc}>"
    return text if text.endswith("\n") else text + "\n"
