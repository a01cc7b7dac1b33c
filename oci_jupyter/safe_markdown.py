"""Model replies as Markdown that a notebook can show safely.

A cell's output from a cell the user ran is trusted: JupyterLab renders its Markdown without
its sanitizer. A reply is the model's text, which a notebook's content or a printed file can
steer, so before ``%%oci`` displays it: raw HTML is escaped (no script, no iframe, no
tracking pixel) and images become links (an image URL would send notebook data to another
server when it loads). Code blocks and code spans are left as they are: Markdown shows them
literally."""

from __future__ import annotations

import re

# Fenced blocks (``` or ~~~, to their closing fence or the end) and inline code spans.
_CODE = re.compile(r"(?ms)^[ \t]*(```|~~~).*?(?:^[ \t]*\1[ \t]*$|\Z)|(`+)[^`\n]*?\2")
_IMAGE = re.compile(r"!(\[[^\]\n]*\])(?=[(\[])")


def safe_markdown(text: str) -> str:
    """``text`` with raw HTML escaped and images turned into links, code untouched."""
    parts: list[str] = []
    position = 0
    for match in _CODE.finditer(text):
        parts.append(_prose(text[position : match.start()]))
        parts.append(match.group())
        position = match.end()
    parts.append(_prose(text[position:]))
    return "".join(parts)


def _prose(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _IMAGE.sub(r"\1", text)
