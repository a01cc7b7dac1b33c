"""HumanEval infilling (Bavarian et al., 2022): how well the served model fills in the middle,
through the server's endpoints, as ghost text asks for it.

The data is OpenAI's ``human-eval-infilling`` (MIT), kept outside the repository: the harness
takes its folder (default ``../shared/data/humaneval-infilling``). Each problem is the code
before a hole (``prompt``), the code after it (``suffix``) and the missing middle; a
completion is right when ``prompt + middle + suffix`` passes the problem's ``check``, run in a
separate process with a time limit (never in this process).

Two prompt styles, both greedy:

- ``fim``: ``POST /oci/v1/completions`` with ``prompt`` and ``suffix``: the engine wraps them
  in the model's own infilling markers (what ghost text sends);
- ``chat``: ``POST /oci/v1/chat/completions`` with the chat template, asking the instruct model
  for the middle in words (Qwen's own instruct template for infilling, from
  QwenLM/Qwen2.5-Coder ``qwencoder-eval/base/benchmarks/fim-bench/utils.py``); the code of
  the reply's first fenced block, or the reply, is the middle;
- ``chat-hole``: the chat template with the code in one block and a ``<FILL>`` mark at the
  hole, asking for the code that replaces it; a reply that rewrites the whole code gives
  the middle by removing what it shares with the prefix and the suffix.

Scores: pass@1 of the middle as generated, pass@1 of its first line only (the single-line
task's hole is one line; ghost text that stops at the line's end), and the exact match of
the first line that the Qwen2.5-Coder report's HumanEval-FIM figures use (its Table 7: "the
proportion of the first generated code line that precisely match the ground truth", compared
stripped, a leading newline skipped, as its ``humaneval_fim.py`` does).

    python -m oci_jupyter.evaluation.infilling --url URL --token TOKEN --style fim --every 4
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from .timed_process import run_script

DEFAULT_DATA = Path("..") / "shared" / "data" / "humaneval-infilling"
FILES = {
    "single": "HumanEval-SingleLineInfilling.jsonl.gz",
    "multi": "HumanEval-MultiLineInfilling.jsonl.gz",
    "span": "HumanEval-RandomSpanInfillingLight.jsonl.gz",
}
Kind = Literal["single", "multi", "span"]
Style = Literal["fim", "chat", "chat-hole"]
TIME_LIMIT = 10.0
"""Seconds a problem's test may run (HumanEval's own tests take well under one)."""

CHAT_SYSTEM = "You are a code completion assistant."
CHAT_TEMPLATE = """Please complete the middle code, based on the given prefix/suffix code of the current file and context code of other files.
##Context Code##:
{}
##Prefix Code##:
{}
##Suffix Code##:
{}
##Middle Code##:
"""  # noqa: E501 - Qwen's words, as they are
"""Qwen's instruct-model infilling prompt (``REPO_COMPLETE_TEMPLATE``), the context empty."""


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    suffix: str
    canonical_solution: str
    test: str
    entry_point: str


@dataclass
class Result:
    task_id: str
    middle: str
    """The middle as the model generated it (after reading a chat reply's code)."""
    raw: str
    finish_reason: str
    seconds: float
    passed: bool = False
    """``prompt + middle + suffix`` passes the test."""
    passed_first_line: bool = False
    """``prompt + first line of the middle + suffix`` passes it."""
    exact_first_line: bool = False
    """The first line equals the canonical solution's (Qwen's exact match)."""
    failure: str = ""
    """Why the test failed (its error's last line, or "timed out")."""
    error: str = ""
    """The request failed (nothing was judged)."""


def load_problems(
    data: Path, kind: Kind = "single", every: int = 1, limit: int | None = None
) -> list[Problem]:
    """The problems of one file, every ``every``-th of them (a fixed sample), at most
    ``limit``."""
    path = data / FILES[kind]
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: pass the humaneval-infilling folder with --data"
        )
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    fields = Problem.__dataclass_fields__
    problems = [Problem(**{k: v for k, v in row.items() if k in fields}) for row in rows]
    problems = problems[:: max(1, every)]
    return problems[:limit] if limit else problems


def first_line(middle: str) -> str:
    """The middle's first line, as Qwen's harness reads it: a leading newline is skipped."""
    if middle.startswith(("\n", " \n")):
        lines = middle.split("\n")
        return lines[1] if len(lines) > 1 else ""
    return middle.split("\n")[0]


def exact_first_line(middle: str, canonical: str) -> bool:
    return first_line(middle).strip() == canonical.strip()


_FENCE = re.compile(r"```[A-Za-z0-9_+-]*\n(.*?)(?:```|$)", re.DOTALL)


def chat_middle(reply: str) -> str:
    """The code of a chat reply: its first fenced block, else the reply as it is."""
    match = _FENCE.search(reply)
    return match.group(1) if match else reply


def chat_messages(problem: Problem) -> list[dict[str, str]]:
    user = CHAT_TEMPLATE.format("", problem.prompt, problem.suffix)
    return [{"role": "system", "content": CHAT_SYSTEM}, {"role": "user", "content": user}]


HOLE = "<FILL>"
HOLE_REQUEST = (
    "Write the code that replaces {hole} in this Python code. Reply with only that code, "
    "indented as it must be there, in one ```python block.\n\n```python\n{code}```"
)


def hole_messages(problem: Problem) -> list[dict[str, str]]:
    code = problem.prompt + HOLE + problem.suffix
    user = HOLE_REQUEST.format(hole=HOLE, code=code)
    return [{"role": "system", "content": CHAT_SYSTEM}, {"role": "user", "content": user}]


def hole_middle(code: str, prefix: str, suffix: str) -> str:
    """The middle of a reply that may rewrite the code around the hole as well."""
    if len(code) > len(prefix) and code.startswith(prefix.rstrip("\n")):
        code = code[len(prefix.rstrip("\n")) :].lstrip("\n")
    tail = suffix.strip()
    if tail and code.rstrip().endswith(tail):
        code = code.rstrip()[: -len(tail)].rstrip(" \t")  # and the suffix's indentation
    return code if code.endswith("\n") else code + "\n"


def program(problem: Problem, middle: str) -> str:
    return (
        problem.prompt
        + middle
        + problem.suffix
        + "\n\n"
        + problem.test
        + f"\n\ncheck({problem.entry_point})\n"
    )


async def passes(code: str, time_limit: float = TIME_LIMIT) -> tuple[bool, str]:
    """Whether ``code`` runs to its end in a new Python process within ``time_limit``."""
    with tempfile.TemporaryDirectory(prefix="oci-infill-") as folder:
        script = Path(folder) / "program.py"
        script.write_text(code, encoding="utf-8")
        run = await run_script(script, cwd=Path(folder), time_limit=time_limit)
    if run.timed_out:
        return False, "timed out"
    return run.returncode == 0, "" if run.returncode == 0 else run.failure()


class EndpointClient:
    """The served model through a Jupyter server's endpoints (greedy, background priority:
    a chat turn of a person using the same server goes first)."""

    def __init__(self, url: str, token: str, timeout: float = 600.0) -> None:
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/") + "/",
            headers={"Authorization": f"token {token}", "X-OCI-Priority": "background"},
            timeout=timeout,
        )

    async def status(self) -> dict[str, Any]:
        response = await self._client.get("oci/status")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def fill(self, problem: Problem, style: Style, max_tokens: int) -> tuple[str, str, str]:
        """(middle, raw text, finish reason)."""
        if style == "fim":
            body = {
                "prompt": problem.prompt,
                "suffix": problem.suffix,
                "max_tokens": max_tokens,
                "temperature": 0,
            }
            response = await self._client.post("oci/v1/completions", json=body)
            response.raise_for_status()
            choice = response.json()["choices"][0]
            return choice["text"], choice["text"], choice["finish_reason"]
        hole = style == "chat-hole"
        body = {
            "messages": hole_messages(problem) if hole else chat_messages(problem),
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        response = await self._client.post("oci/v1/chat/completions", json=body)
        response.raise_for_status()
        choice = response.json()["choices"][0]
        reply = choice["message"]["content"]
        middle = chat_middle(reply)
        if hole:
            middle = hole_middle(middle, problem.prompt, problem.suffix)
        return middle, reply, choice["finish_reason"]

    async def close(self) -> None:
        await self._client.aclose()


async def evaluate(
    client: EndpointClient,
    problems: list[Problem],
    style: Style,
    max_tokens: int,
    out: Path | None = None,
    progress: bool = True,
) -> list[Result]:
    """Generate and judge each problem; judging runs while the next one generates."""
    results: list[Result] = []
    judging: list[asyncio.Task[None]] = []
    done = _done_ids(out)
    records = out.open("a", encoding="utf-8") if out else None
    started = time.monotonic()
    try:
        for index, problem in enumerate(problems):
            if problem.task_id in done:
                results.append(done[problem.task_id])
                continue
            began = time.monotonic()
            try:
                middle, raw, reason = await client.fill(problem, style, max_tokens)
            except httpx.HTTPError as exc:
                result = Result(problem.task_id, "", "", "error", 0.0, error=str(exc))
            else:
                result = Result(problem.task_id, middle, raw, reason, time.monotonic() - began)
            results.append(result)
            judging.append(asyncio.ensure_future(_judge(problem, result, records)))
            if progress:
                passed = sum(r.passed for r in results)
                print(
                    f"\r{index + 1}/{len(problems)} pass {passed}"
                    f" ({time.monotonic() - started:.0f} s)",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
            if len(judging) > 4:
                await judging.pop(0)
        await asyncio.gather(*judging)
    finally:
        if records:
            records.close()
        if progress:
            print(file=sys.stderr)
    return results


async def _judge(problem: Problem, result: Result, records: Any) -> None:
    if not result.error:
        result.passed, result.failure = await passes(program(problem, result.middle))
        line = first_line(result.middle)
        result.passed_first_line, _ = await passes(program(problem, line + "\n"))
        result.exact_first_line = exact_first_line(result.middle, problem.canonical_solution)
    if records is not None:
        records.write(json.dumps(asdict(result)) + "\n")
        records.flush()


def _done_ids(out: Path | None) -> dict[str, Result]:
    """Results already in ``out`` (a resumed run)."""
    if out is None or not out.exists():
        return {}
    done: dict[str, Result] = {}
    for line in out.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            done[row["task_id"]] = Result(**row)
    return done


def summary(results: Iterable[Result]) -> dict[str, Any]:
    rows = list(results)
    n = len(rows)

    def share(flags: Iterator[bool]) -> float:
        return round(100.0 * sum(flags) / n, 1) if n else 0.0

    return {
        "problems": n,
        "pass@1": share(r.passed for r in rows),
        "pass@1_first_line": share(r.passed_first_line for r in rows),
        "exact_match_first_line": share(r.exact_first_line for r in rows),
        "request_errors": sum(bool(r.error) for r in rows),
        "seconds_per_problem": round(sum(r.seconds for r in rows) / n, 2) if n else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m oci_jupyter.evaluation.infilling", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--url", required=True, help="a Jupyter server with oci_jupyter")
    parser.add_argument("--token", default=os.environ.get("OCI_TOKEN", ""))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--kind", choices=list(FILES), default="single")
    parser.add_argument("--style", choices=["fim", "chat", "chat-hole"], default="fim")
    parser.add_argument("--every", type=int, default=1, help="every N-th problem (a sample)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, help="results, one JSON line a problem (resumed)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    problems = load_problems(args.data, args.kind, args.every, args.limit)

    async def run() -> list[Result]:
        client = EndpointClient(args.url, args.token)
        try:
            return await evaluate(
                client, problems, args.style, args.max_tokens, args.out, not args.no_progress
            )
        finally:
            await client.close()

    results = asyncio.run(run())
    print(json.dumps({"kind": args.kind, "style": args.style, **summary(results)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
