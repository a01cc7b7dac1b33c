"""A run, as both harnesses (:mod:`.runner`, :mod:`.dabench_runner`) make one: its sessions in
``run.json`` (``--resume`` adds one), its workers over a queue of problems (or questions),
its progress bar, and its end, which always writes the reports and clears the scratch folder.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from .run_folder import save_run, wall_seconds

T = TypeVar("T")


@dataclass
class RunBook:
    """``run.json`` of the run in ``out``, and this session's entry in its ``sessions``."""

    out: Path
    run: dict[str, Any]
    session: dict[str, Any]
    unit: str
    """What the session counts: ``problems``, ``questions``."""
    clock: float

    @classmethod
    def open(
        cls,
        out: Path,
        run: dict[str, Any],
        *,
        config: dict[str, Any],
        selected: int,
        unit: str,
    ) -> RunBook:
        """A new session of ``run`` (``{}`` for a new run), saved at once."""
        sessions: list[dict[str, Any]] = list(run.get("sessions", []))
        session: dict[str, Any] = {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": 0.0,
            unit: 0,
        }
        sessions.append(session)
        run.update(config=config, sessions=sessions, selected=selected)
        book = cls(out, run, session, unit, time.monotonic())
        book.save()
        return book

    def save(self) -> None:
        self.session["seconds"] = round(time.monotonic() - self.clock, 1)
        save_run(self.out, self.run)

    def count_one(self) -> None:
        """One more finished in this session."""
        self.session[self.unit] = int(self.session[self.unit]) + 1
        self.save()

    @property
    def wall_seconds(self) -> float:
        return wall_seconds(self.run)


async def run_workers(
    todo: Sequence[T],
    workers: int,
    work: Callable[[int, asyncio.Queue[T]], Awaitable[None]],
    book: RunBook,
    bar: Any,
    scratch: Path,
    final: Callable[[], dict[str, Any]],
    write: Callable[[dict[str, Any]], None],
    prog: str,
) -> dict[str, Any]:
    """``workers`` tasks (``work(index, queue)``) take ``todo`` from one queue; the first error
    ends the run (a KeyboardInterrupt wins). Whatever happened, the session is saved, the
    reports are written (``write(final())``; a failure to write them is said on stderr and
    never hides the run's own error) and ``scratch`` is removed. Returns ``final()``."""
    queue: asyncio.Queue[T] = asyncio.Queue()
    for item in todo:
        queue.put_nowait(item)
    try:
        async with asyncio.TaskGroup() as group:
            for index in range(min(workers, len(todo))):
                group.create_task(work(index, queue))
    except BaseExceptionGroup as failures:
        raise first_error(failures) from None
    finally:
        bar.close()
        book.save()
        summary = final()
        try:
            write(summary)
        except Exception as exc:
            print(f"{prog}: could not write the reports: {exc}", file=sys.stderr)
        shutil.rmtree(scratch, ignore_errors=True)
    return summary


def first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    """The error that ended a run (a KeyboardInterrupt wins over the rest)."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        error = stack.pop()
        if isinstance(error, BaseExceptionGroup):
            stack.extend(reversed(error.exceptions))
        else:
            leaves.append(error)
    for error in leaves:
        if isinstance(error, KeyboardInterrupt):
            return error
    return leaves[0]


def progress_bar(total: int, initial: int, enabled: bool, *, unit: str, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit=unit,
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
        desc=desc,
    )


__all__ = ["RunBook", "first_error", "progress_bar", "run_workers"]
