"""Wall time of the smoke grid (make smoke), from nothing to every table and figure, and the time
the paper grid's DAG (390 training jobs) takes to build.

    python benchmarks/smoke_grid_time.py [--cores 2] [--keep DIR]

Runs `snakemake --cores N --configfile config/smoke.yaml` (8 CPU training runs -> collect ->
tables and figures) in a fresh copy of the workflow (so results/ of the checkout is untouched),
then times `snakemake -n` of the paper grid. Target: smoke grid <= 5 min on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from workflow_copy import copy_workflow  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--keep", type=Path, default=None, help="run in this (new) dir and keep it")
    args = p.parse_args(argv)
    tmp = None
    if args.keep is None:
        tmp = tempfile.mkdtemp(prefix="smoke-grid-")
        wd = Path(tmp) / "wf"
    else:
        wd = args.keep.resolve()
        if wd.exists():
            p.error(f"{wd} exists; give a new directory")
    copy_workflow(wd)
    snakemake = [sys.executable, "-m", "snakemake"]
    cmd = [*snakemake, "--cores", str(args.cores), "--configfile", "config/smoke.yaml"]
    print(f"# {' '.join(cmd[1:])}  (in a fresh copy: {wd})")
    print(f"# machine: {os.cpu_count()} CPUs; load average before: {os.getloadavg()}")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=wd, capture_output=True, text=True)
    smoke_s = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        print(f"smoke grid FAILED after {smoke_s:.1f} s", file=sys.stderr)
        return 1
    runs = len(list(wd.glob("results/runs/*/*/seed*/eval.parquet")))
    figures = len(list(wd.glob("results/figures/*.png")))
    print(f"smoke grid: {smoke_s:.1f} s wall ({runs} training runs, {figures} figures; "
          f"target <= 300 s)")
    t0 = time.perf_counter()
    dry = subprocess.run([*snakemake, "-n", "--quiet", "rules"], cwd=wd, capture_output=True,
                         text=True)
    dag_s = time.perf_counter() - t0
    trains = [ln for ln in (dry.stdout + dry.stderr).splitlines() if ln.startswith("train ")]
    print(f"paper grid dry run (DAG build, {trains[0].split()[-1] if trains else '?'} training "
          f"jobs): {dag_s:.1f} s wall")
    print(f"# load average after: {os.getloadavg()}")
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
