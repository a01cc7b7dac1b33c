"""A run's folder, as both harnesses keep it: ``records.jsonl`` (appended a problem or a
question at a time), ``run.json`` (the config and the sessions), the summary written
atomically, and where the numbers were measured.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RECORDS = "records.jsonl"
RUN = "run.json"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"


class RecordStore:
    """``records.jsonl``: one JSON line per problem and turn, appended and flushed (and
    fsynced) a problem at a time, so an interrupted run keeps every finished problem."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / RECORDS

    def load(self) -> list[dict[str, Any]]:
        """All complete records (a line cut short by a crash is skipped)."""
        if not self.path.exists():
            return []
        records = []
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and "task_id" in record:
                    records.append(record)
        return records

    def finished_ids(self) -> set[str]:
        """Problems whose last turn was written (their records are complete)."""
        return {r["task_id"] for r in self.load() if r.get("final")}

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with self.path.open("a+b") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() > 0:  # after a crash mid-line, start on a line of our own
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    text = "\n" + text
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())


def write_summary(
    folder: Path,
    summary: dict[str, Any],
    markdown: Callable[[dict[str, Any]], str],
    plot: Callable[[dict[str, Any], Path], None] | None = None,
    plot_name: str = "",
) -> None:
    """``summary.json`` and ``summary.md`` (written whole or not at all), then the plot."""
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / SUMMARY_JSON, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    write_atomic(folder / SUMMARY_MD, markdown(summary))
    if plot is not None:
        plot(summary, folder / plot_name)


def write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


# ---- the run's own bookkeeping ---------------------------------------------------------------
def load_run(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / RUN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_run(folder: Path, data: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / RUN, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def wall_seconds(run: dict[str, Any]) -> float:
    """The seconds of every session of the run (``--resume`` adds one)."""
    return sum(float(s.get("seconds", 0.0)) for s in run.get("sessions", []))


def machine() -> dict[str, Any]:
    """CPU model, cores, memory: where the numbers were measured."""
    cpu_model = platform.processor() or platform.machine()
    memory_gib: float | None = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024**2, 1)
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {
        "cpu_model": cpu_model,
        "cores": cores,
        "memory_gib": memory_gib,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_average": load,
    }


# ---- the summary's words ----------------------------------------------------------------------
def machine_line(info: dict[str, Any]) -> str:
    """The summary's line on :func:`machine`."""
    return (
        f"- machine: {info.get('cpu_model', '?')}, {info.get('cores', '?')} cores (nproc), "
        f"{info.get('memory_gib', '?')} GiB RAM, Python {info.get('python', '?')}; load "
        f"average when written: {info.get('load_average', '?')}"
    )


def counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{key or '—'} {value}" for key, value in sorted(counter.items())) or "none"


def duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min {rest:02d} s" if hours else f"{minutes} min {rest:02d} s"


__all__ = [
    "RECORDS",
    "RUN",
    "SUMMARY_JSON",
    "SUMMARY_MD",
    "RecordStore",
    "counts",
    "duration",
    "load_run",
    "machine",
    "machine_line",
    "save_run",
    "wall_seconds",
    "write_atomic",
    "write_summary",
]
