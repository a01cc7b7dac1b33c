"""Nothing lost: the fault table (issue "Nothing lost", section 5).

Runs tests/test_faults.py with pytest in this process (the scripted engine; ``--model`` adds
the real-model fault) and prints, per fault: how often it was injected, how often the server
survived it (Jupyter answers, nothing left running, every request its one ``done``, every
started request its record, the notebooks byte-identical, a new chat works), the user cells
and chat records lost (goal 0) and the requests without their ``done`` (goal 0); then the CPU
and the total time. Not a performance figure: a regression table.

    python benchmarks/faults.py [--model] [-k EXPR] [--json out/faults.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pytest  # noqa: E402

from oci_jupyter.engine.llamacpp import cpu_model  # noqa: E402


@dataclass
class Row:
    fault: str
    injected: int
    survived: int
    lost: int
    without_done: int
    result: str
    """passed, failed, xfailed (a known product bug, see tests/test_faults.py)."""


class Outcomes:
    """pytest plugin: each test's result (setup, call and teardown together)."""

    def __init__(self) -> None:
        self.results: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        else:
            outcome = report.outcome
        previous = self.results.get(report.nodeid, "passed")
        if previous == "passed" or outcome == "failed":
            self.results[report.nodeid] = outcome


def throwaway_environment() -> None:
    """Jupyter's folders in a temp folder; never a hub."""
    base = Path(tempfile.mkdtemp(prefix="oci-faults-"))
    for name in ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR"):
        folder = base / name.lower()
        folder.mkdir()
        os.environ[name] = str(folder)
    os.environ.update(HF_HUB_OFFLINE="1", OCI_HUB_OFFLINE="1")


def rows(outcomes: dict[str, str]) -> list[Row]:
    from tests.faults import RESULTS

    table: list[Row] = []
    checked = set()
    for survival in RESULTS:
        checked.add(survival.nodeid)
        result = outcomes.get(survival.nodeid, "?")
        table.append(
            Row(
                survival.fault,
                survival.injected,
                survival.survived if result in ("passed", "xfailed") else 0,
                len(survival.cells_lost) + len(survival.records_lost),
                len(survival.without_done),
                result,
            )
        )
    for nodeid, result in outcomes.items():  # failed before its check: nothing survived
        if nodeid not in checked and result != "skipped":
            table.append(Row(nodeid.split("::")[-1], 1, 0, 0, 0, result))
    return table


def print_table(table: list[Row]) -> None:
    header = ("fault", "injected", "survived", "user cells/records lost", "requests without done")
    lines = [(r.fault, r.injected, r.survived, r.lost, r.without_done, r.result) for r in table]
    total = (
        "total",
        sum(r.injected for r in table),
        sum(r.survived for r in table),
        sum(r.lost for r in table),
        sum(r.without_done for r in table),
        "",
    )
    width = max(len(header[0]), *(len(str(line[0])) for line in [*lines, total]))
    print(
        f"{header[0]:<{width}} | {header[1]:>8} | {header[2]:>8} | {header[3]:>23} | "
        f"{header[4]:>21} | result"
    )
    print(f"{'-' * width}-|-{'-' * 8}-|-{'-' * 8}-|-{'-' * 23}-|-{'-' * 21}-|-------")
    for fault, injected, survived, lost, without, result in [*lines, total]:
        print(
            f"{fault:<{width}} | {injected:>8} | {survived:>8} | {lost:>23} | {without:>21} "
            f"| {result}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="store_true", help="also the real-model fault")
    parser.add_argument("-k", default="", help="only the tests pytest's -k selects")
    parser.add_argument("--json", type=Path, help="also write the table to this file")
    args = parser.parse_args()

    throwaway_environment()
    os.chdir(REPO)
    started = time.monotonic()
    outcomes = Outcomes()
    argv = ["tests/test_faults.py", "-q", "-p", "no:cacheprovider", "--show-capture=no"]
    argv += ["-m", "" if args.model else "not model"]
    if args.k:
        argv += ["-k", args.k]
    code = pytest.main(argv, plugins=[outcomes])
    elapsed = time.monotonic() - started

    table = rows(outcomes.results)
    print()
    print_table(table)
    print(f"\nCPU: {cpu_model()} ({os.cpu_count()} cores); total time {elapsed:.1f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        body: dict[str, Any] = {
            "cpu": cpu_model(),
            "seconds": elapsed,
            "rows": [asdict(r) for r in table],
        }
        args.json.write_text(json.dumps(body, indent=2))
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
