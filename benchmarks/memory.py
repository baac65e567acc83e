"""Resident memory measured while code runs (Linux /proc), for the benchmarks.

The numba engines allocate outside Python's tracemalloc, and dask worker
processes are spawned from the benchmark (their ``ru_maxrss`` starts at the
parent's size), so the benchmarks sample RSS instead. This is a module of its
own so that dask workers import it by name and keep its state between calls.
"""

from __future__ import annotations

import resource
import threading
from pathlib import Path
from typing import Any, Self


def rss_mb() -> float:
    """This process's resident memory now, MB."""
    fields = Path("/proc/self/statm").read_text().split()
    return int(fields[1]) * resource.getpagesize() / 2**20


class PeakRSS:
    """Peak resident memory above the start, sampled every 20 ms (Linux /proc) while open.

    The numba engine allocates outside Python's tracemalloc, so RSS is the honest measure.
    """

    def __init__(self) -> None:
        self.start = self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())

    @property
    def above_start_mb(self) -> float:
        return self.peak - self.start


_SAMPLER: dict[str, Any] = {}


def start_sampler() -> float:
    """Start sampling this process's RSS every 20 ms (run on each worker); the RSS now, MB."""
    sampler = PeakRSS()
    sampler.__enter__()
    _SAMPLER["current"] = sampler
    return sampler.start


def stop_sampler() -> float:
    """Stop the sampler; the peak RSS it saw, MB."""
    sampler = _SAMPLER.pop("current")
    sampler.__exit__()
    return float(sampler.peak)
