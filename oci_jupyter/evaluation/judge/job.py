"""The judging job: every part judged in turn, the verdicts written after each (so that a
process killed at its time limit still leaves what it finished)."""

from __future__ import annotations

import json
import os
from typing import Any

from .asserts import judge_asserts
from .differential import judge_differential
from .verdicts import failure, load_candidate


def run(job: dict[str, Any]) -> dict[str, Any]:
    verdicts: dict[str, Any] = {}
    source = job["code"]
    for part in job["parts"]:
        part = {"entry_point": job["entry_point"], **part}
        if part["kind"] == "inputs":
            verdicts[part["name"]] = judge_differential(part, source)
        else:
            try:
                namespace, function = load_candidate(source, job["entry_point"])
            except BaseException as error:
                verdicts[part["name"]] = failure(error)
            else:
                verdicts[part["name"]] = judge_asserts(part, namespace, function)
        _write(job["verdict"], verdicts)
    return verdicts


def _write(path: str, verdicts: dict[str, Any]) -> None:
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(verdicts, handle, default=repr)
    os.replace(temporary, path)


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as handle:
        job = json.load(handle)
    limit = job.get("memory_limit")
    if limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    run(job)
    return 0
