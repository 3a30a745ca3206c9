"""Helpers shared by the benchmarks: median timing, matmul roofline, machine info, JSON output.

Benchmarks run on shared, noisy machines (see ``docs/benchmarks.md``): report medians of several
repeats and, where possible, ratios measured side by side in the same run.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch


def median(values: Sequence[float]) -> float:
    """The median as a plain float (robust to the outliers a shared machine produces)."""
    return float(statistics.median(values))


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def matmul_gflops(dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 3) -> float:
    """Median GFLOP/s of an ``n × n`` matmul (``2 n³`` FLOPs) at the current torch threads.

    This is the practical compute roofline of this machine, measured in the caller's run.
    """
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(dtype)
    b = torch.randn(n, n, generator=g).to(dtype)
    times = time_calls(lambda: torch.mm(a, b), repeats, warmup=1)
    return 2.0 * n**3 / median(times) / 1e9


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on, including the load other jobs put on the machine."""
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("OMP_", "MKL_", "KMP_", "GOMP_")) or k == "GLIBC_TUNABLES"}
    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "mkldnn": torch.backends.mkldnn.is_available(),
        "torch_threads_default": torch.get_num_threads(),
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "env": env,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON to ``path``, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """Plain-text table (right-aligned columns) for the console."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
