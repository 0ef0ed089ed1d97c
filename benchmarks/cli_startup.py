"""How quickly does ``talking-face`` answer, and what does it load before a tool runs?

    python benchmarks/cli_startup.py [--repeats 5] [--out outputs/benchmarks]

Times, in fresh processes (best and median of ``--repeats``), with their peak memory (max RSS):
``talking-face --help``, ``talking-face generate --help`` and a usage error (``generate`` with
``--chunk_frames 0``, refused before any model loads), against the baseline measured in the same run: a
process that imports torch and Lightning, which each of them paid before tools imported their libraries
only when they run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "talking-face --help": [sys.executable, "-m", "talking_face.cli", "--help"],
    "talking-face generate --help": [sys.executable, "-m", "talking_face.cli", "generate", "--help"],
    "usage error (--chunk_frames 0)": [sys.executable, "-m", "talking_face.cli", "generate", "--face",
                                       __file__, "--text", "hi", "--chunk_frames", "0"],
    "baseline: import torch, lightning": [sys.executable, "-c", "import torch, lightning"],
}  # fmt: skip


def measure(command: list[str], repeats: int) -> tuple[float, float, float]:
    """Best and median wall seconds, and the peak RSS in MB, of ``command`` over ``repeats`` fresh runs."""
    seconds, peaks = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, _, usage = os.wait4(child.pid, 0)  # this child's own resources
        seconds.append(time.perf_counter() - started)
        peaks.append(usage.ru_maxrss / 1024)
    return min(seconds), statistics.median(seconds), max(peaks)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks"))
    args = parser.parse_args(argv)
    rows = ["| command | best s | median s | peak RSS MB |", "|---|---:|---:|---:|"]
    for name, command in CASES.items():
        best, median, peak = measure(command, args.repeats)
        rows.append(f"| {name} | {best:.2f} | {median:.2f} | {peak:.0f} |")
    table = "\n".join(rows)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cli_startup.md").write_text(table + "\n")
    return table


if __name__ == "__main__":
    main()
