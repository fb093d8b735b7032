"""Wall time of the README's main example, and the machine it ran on.

    python benchmarks/readme_timing.py [--repeat 3] [--allow-twins]

Runs ``otf-spin run --fresh input_examples/bccFe_otf_heisenberg.yaml`` (on-the-fly LLG of
16 bcc Fe spins, 300 -> 1000 K, learning from the embedded Heisenberg oracle) in a fresh
temporary folder each time, exactly as the README's command does (a new process: the
import of the package is included), and prints every wall time, their best and median,
and the machine: CPU model, logical cores available to this process, load average
before the runs (other work on the machine slows the example; quote the figure with it).
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "input_examples", "bccFe_otf_heisenberg.yaml")


def cpu_model() -> str:
    """The CPU model name (Linux: /proc/cpuinfo; else platform's)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_once() -> float:
    """Seconds of one fresh run of the example in a temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(EXAMPLE, folder)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "otf_spin", "run", "--quiet", "--fresh",
                        os.path.basename(EXAMPLE)], cwd=folder, check=True,
                       stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs (default 3)")
    parser.add_argument("--allow-twins", action="store_true",
                        help="time the pure-Python twins of kernels that are not built")
    args = parser.parse_args(argv)
    from otf_spin import __version__
    from otf_spin.kernels import refuse_twins

    refuse_twins(args.allow_twins)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"machine: {cpu_model()}, {cores()} logical core(s) for this process, "
          f"Python {platform.python_version()}, otf-spin {__version__}")
    print(f"load average before the runs: {load[0]:.2f} (1 min), {load[1]:.2f} (5 min)")
    times = []
    for k in range(args.repeat):
        times.append(run_once())
        print(f"run {k + 1}: {times[-1]:.1f} s", flush=True)
    times.sort()
    print(f"README main example (otf-spin run input_examples/bccFe_otf_heisenberg.yaml): "
          f"best {times[0]:.1f} s, median {times[len(times) // 2]:.1f} s "
          f"of {len(times)} run(s)")


if __name__ == "__main__":
    main()
