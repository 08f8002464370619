"""Start-up time of ``opskit --help`` against ``python -c "import click"`` (prints, never asserts).

Targets (issue 2): ``opskit --help`` <= 100 ms and <= 2x the bare ``import click``.
Usage: python bench/startup.py [-n RUNS]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time


def median_ms(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=21)
    args = parser.parse_args()
    py = sys.executable
    script = shutil.which("opskit", path=os.path.dirname(py)) or shutil.which("opskit")
    cases = [
        ("python -c 'import click'", [py, "-c", "import click"]),
        ("python -m opskit --help", [py, "-m", "opskit", "--help"]),
    ]
    if script:
        cases.append(("opskit --help (console script)", [script, "--help"]))
    for _, argv in cases:  # warm the page cache and .pyc files
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    results = {label: median_ms(argv, args.runs) for label, argv in cases}
    base = results[cases[0][0]]
    print(f"start-up, median of {args.runs} runs (python {sys.version.split()[0]}):")
    for label, ms in results.items():
        print(f"  {label:<34} {ms:7.1f} ms   {ms / base:4.2f}x import click")
    target = results[cases[-1][0]]
    print(f"targets: <= 100 ms -> {'met' if target <= 100 else 'NOT met'} ({target:.1f} ms); "
          f"<= 2x import click -> {'met' if target <= 2 * base else 'NOT met'} "
          f"({target / base:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
