"""The CPU the engine shares with the user's kernels: how many cores it may use, how busy the
other processes keep them, and the thread counts that follow (llamacpp.py measures and
applies them)."""

from __future__ import annotations

import contextlib
import os
import threading
import time


def default_threads() -> int:
    """Decoding threads before the first load reading: all usable cores but one (the engine
    then follows the load, see threads_for_load; a fixed n_threads is kept)."""
    return max(1, usable_cores() - 1)


def default_batch_threads() -> int:
    """Prompt-reading threads before the first load reading: every core."""
    return usable_cores()


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's model name (printed with every benchmark figure)."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or platform.machine()


class CpuMeter:
    """How many cores other processes keep busy, over the last ``interval`` seconds (from
    /proc/stat minus this process's own time), sampled by a small thread while started."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._value: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as stat:
                fields = [int(x) for x in stat.readline().split()[1:9]]
            with open("/proc/self/stat") as own:
                mine = own.read().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            return None
        tick = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields) - fields[3] - fields[4]) / tick  # all but idle and iowait
        return time.monotonic(), busy, (int(mine[11]) + int(mine[12])) / tick

    def start(self) -> None:
        if self._thread is None and self._read() is not None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, name="oci-cpu-meter", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(2 * self.interval)

    def _sample(self) -> None:
        last = self._read()
        while not self._stop.wait(self.interval):
            now = self._read()
            if now is None or last is None:
                return
            wall = now[0] - last[0]
            if wall > 0:
                used = (now[1] - last[1]) - (now[2] - last[2])
                self._value = max(0.0, used / wall)
            last = now

    def others(self) -> float | None:
        """Cores other processes used in the last interval; None before the first sample."""
        return self._value


def threads_for_load(others: float) -> tuple[int, int]:
    """Decoding and prompt-reading threads when other processes keep ``others`` cores busy:
    one fewer per busy core; prompt reading may use every core, decoding all but one.

    llama.cpp's threads wait for each other spinning, so one that has to share its core
    stalls them all. Measured on 2 cores (benchmarks/README.md, "CPU"): 2 threads read
    165 prompt tokens/s on an idle machine (1 thread: 92) but 49 next to a busy kernel (1
    thread: 90), and decode 12.6 tok/s idle (1 thread: 7.0) but 2.0 next to a busy kernel
    (1 thread: 6.9). Decoding keeps a core free even when idle: with 2 decoding threads
    Jupyter's p99 latency while 4 replies stream rose from 2.4 to 9.7-13.6 ms (P2 4.3-6.9
    against its goal of 3; 1 thread: 1.16)."""
    free = max(1, int(usable_cores() - others + 0.3))
    return min(free, default_threads()), min(free, default_batch_threads())
