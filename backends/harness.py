"""Timing helpers for the benchmarks: interleaved repeats, medians, machine info."""

from __future__ import annotations

import os
import platform
import statistics
import time


def interleaved(contenders: dict, repeats: int = 15, number: int = 50, warmup: int = 5,
                sync=None) -> dict:
    """Median seconds per call of each ``{name: fn}``, the contenders taking turns in every
    repeat so that machine noise hits them alike.  ``sync`` (a callable, or a dict of
    them per contender) runs before each clock reading: a device synchronize on a GPU."""
    syncs = sync if isinstance(sync, dict) else {name: sync for name in contenders}
    syncs = {name: syncs.get(name) or (lambda: None) for name in contenders}
    for name, fn in contenders.items():
        for _ in range(warmup):
            fn()
        syncs[name]()
    samples = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            syncs[name]()
            samples[name].append((time.perf_counter() - t0) / number)
    return {name: statistics.median(s) for name, s in samples.items()}


def machine() -> str:
    """One line naming the CPU, core count and Python."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def versions(*modules) -> str:
    out = []
    for name in modules:
        try:
            mod = __import__(name)
            out.append(f"{name} {mod.__version__}")
        except ImportError:
            pass
    return ", ".join(out)
