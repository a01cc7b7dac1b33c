"""Reading the model's replies: the code to run, where its block closes, and the checks made
before running it (input() calls, code repeated from an earlier attempt)."""

from __future__ import annotations

import ast
import re
import textwrap

_FENCE = re.compile(r"```([^\n`]*)\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3", "ipython", "ipython3"}


def extract_code(reply: str) -> str | None:
    """The reply's last fenced Python block (an unclosed last block counts), or None.

    Blocks tagged as Python win over untagged ones: models often show an example's output in
    an untagged block after the code."""
    tagged: list[str] = []
    untagged: list[str] = []
    for info, body in _FENCE.findall(reply):
        words = info.split()
        language = words[0].lower() if words else ""
        if language in _PYTHON_TAGS and body.strip():
            (tagged if language else untagged).append(body)
    blocks = tagged or untagged
    if not blocks:
        return None
    # A block indented inside a Markdown list keeps the list's indentation: remove it.
    return textwrap.dedent(blocks[-1]).rstrip() + "\n"


_OPEN_CODE = re.compile(
    r"^[ \t]*```[ \t]*(?:python3?|py3?|ipython3?)\b[^\n]*\n", re.MULTILINE | re.IGNORECASE
)
_CLOSE_FENCE = re.compile(r"^[ \t]*```[ \t]*$", re.MULTILINE)


def code_block_end(reply: str) -> int | None:
    """Where the reply's first complete ```python block ends (just past its closing fence),
    or None while there is none: the code runs as soon as its block closes, and what the
    model says about the result comes after it has read the result."""
    start = 0
    while (opening := _OPEN_CODE.search(reply, start)) is not None:
        # The closing fence must be a whole line: the line after it must have begun.
        closing = next(
            (c for c in _CLOSE_FENCE.finditer(reply, opening.end()) if c.end() < len(reply)),
            None,
        )
        if closing is None:
            return None
        if reply[opening.end() : closing.start()].strip():
            return closing.end()
        start = closing.end()  # an empty block: the code may be in the next one
    return None


def calls_input(code: str) -> bool:
    """Whether the code calls input() (nobody is there to answer it)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):  # deep nesting: no analysis
        return re.search(r"(?<![\w.])input\s*\(", code) is not None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "input":
                return True
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "input"
                and isinstance(func.value, ast.Name)
                and func.value.id == "builtins"
            ):
                return True
    return False


def same_code(a: str, b: str) -> bool:
    """Whether two pieces of code are the same but for trailing spaces and blank lines."""

    def lines(code: str) -> list[str]:
        return [line.rstrip() for line in code.strip("\n").splitlines() if line.strip()]

    return lines(a) == lines(b)


_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?![\w]|\.\d)")
_CODE_SPANS = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.DOTALL)


def _numbers(text: str) -> list[tuple[str, float]]:
    found = []
    for match in _NUMBER.finditer(text):
        literal = match.group().rstrip(",")
        try:
            found.append((literal, float(literal.replace(",", ""))))
        except ValueError:
            continue
    return found


def ungrounded_numbers(answer: str, shown: list[str]) -> list[str]:
    """The numbers in an answer's words (code left out) that appear in none of ``shown``
    (what the runs printed, the request), allowing for rounding ("12.58" for 12.5833).
    Integers up to 10 are left alone: prose is full of them ("2 steps", "the 3 largest")."""
    known = [value for text in shown for _, value in _numbers(text)]
    missing: list[str] = []
    for literal, value in _numbers(_CODE_SPANS.sub(" ", answer)):
        if value == int(value) and abs(value) <= 10:
            continue
        decimals = len(literal.partition(".")[2])
        tolerance = 0.5 * 10**-decimals + 1e-9
        if not any(
            abs(value - k) <= tolerance or abs(abs(value) - abs(k)) <= tolerance for k in known
        ):
            missing.append(literal)
    return missing


_VALUE = re.compile(r"\d|\"[^\"\n]+\"|'[^'\n]+'|`[^`\n]+`|\*\*[^*\n]+\*\*")


def states_a_value(answer: str) -> bool:
    """Whether an answer's words (code left out) state a specific value: a number, or
    something quoted, in backticks or in bold ("The result is 'south'")."""
    words = re.sub(r"```.*?(?:```|\Z)", " ", answer, flags=re.DOTALL)
    return _VALUE.search(words) is not None
