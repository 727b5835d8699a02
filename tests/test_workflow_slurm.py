"""The smoke grid through the SLURM profile on a real one-node SLURM cluster (slurmctld + slurmd +
munged on localhost, started by scripts/slurm_local_start.sh and stopped by PID).

Runs where it can install/start SLURM (root with apt-get, or SLURM already installed). In CI
(CI env var set) it must run: not being able to is a failure, not a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from workflow_copy import ROOT, copy_workflow, workflow_env

SLURM_BINARIES = ["slurmctld", "slurmd", "sbatch", "squeue", "munged"]


def _why_not_runnable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to start munged/slurmctld/slurmd"
    if not shutil.which("apt-get") and not all(shutil.which(b) for b in SLURM_BINARIES):
        return "SLURM is not installed and apt-get is unavailable"
    if not shutil.which("timeout"):
        return "coreutils `timeout` is missing"
    return None


@pytest.mark.slow
def test_smoke_grid_runs_every_training_job_as_a_slurm_job(tmp_path):
    why = _why_not_runnable()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the SLURM test, but: {why}")
        pytest.skip(why)
    state = tmp_path / "slurm"
    start = ROOT / "scripts" / "slurm_local_start.sh"
    stop = ROOT / "scripts" / "slurm_local_stop.sh"
    try:
        up = subprocess.run(["bash", str(start), str(state)], capture_output=True, text=True,
                            timeout=300)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
        wd = copy_workflow(tmp_path / "wf")
        # The literal user command (the smoke grid is a CPU grid: profiles/cpu) plus test-only
        # overrides: the partition (the one place the profile leaves to the user, here the
        # local cluster's), fast status polling, no retries, a shorter run (120 steps: 20
        # updates) to fit CI's budget, and one (fake) GPU per training job, so that the GPU
        # request of the paper preset's jobs (profiles/default) is exercised through sbatch.
        cmd = ["timeout", "-s", "INT", "480", sys.executable, "-m", "snakemake",
               "--profile", "slurm", "--configfile", "config/smoke.yaml",
               "--workflow-profile", "profiles/cpu", "--set-resources", "train:gpu=1",
               "--config", "steps=120",
               "--default-resources", "slurm_partition=debug", "mem_mb=2000", "runtime=30",
               "--seconds-between-status-checks", "2",
               "--slurm-init-seconds-before-status-checks", "2", "--retries", "0"]
        run = subprocess.run(cmd, cwd=wd, env=workflow_env(),
                             capture_output=True, text=True, timeout=540)
        out = run.stdout + run.stderr
        assert run.returncode == 0, out[-5000:]

        # Every training run wrote its SLURM job id; each is a distinct job that completed on
        # the debug partition with one (fake) GPU.
        logs = sorted(wd.glob("results/logs/runs/*/*/seed*/train.log"))
        assert len(logs) == 8, logs
        job_ids = []
        for log in logs:
            m = re.search(r"slurm_job_id=(\d+)", log.read_text())
            assert m, f"{log} was not run inside a SLURM job:\n{log.read_text()[-1000:]}"
            job_ids.append(m.group(1))
        assert len(set(job_ids)) == 8
        jobcomp = (state / "log" / "jobcomp.log").read_text()
        for job in job_ids:
            rec = re.search(rf"^JobId={job} .*$", jobcomp, re.M)
            assert rec and "JobState=COMPLETED" in rec.group(0), (job, jobcomp[-2000:])
            assert "Partition=debug" in rec.group(0)
            show = subprocess.run(["scontrol", "show", "job", job], capture_output=True,
                                  text=True).stdout
            assert re.search(r"gres/gpu[:=](fake:)?1|gpu:1", show), show
        scores = pd.read_parquet(wd / "results/scores.parquet")
        assert len(scores) == 8 and (scores["env_steps"] == 120).all()
        assert (wd / "results/figures/aggregates.png").stat().st_size > 10_000
    finally:
        subprocess.run(["bash", str(stop), str(state)], capture_output=True, timeout=60)
    # the daemons started for the test are gone
    for name in ("slurmctld", "slurmd"):
        pidfile = state / f"{name}.pid"
        if pidfile.exists() and pidfile.read_text().strip():
            pid = int(pidfile.read_text())
            assert not Path(f"/proc/{pid}").exists() or \
                "zombie" in Path(f"/proc/{pid}/status").read_text().lower(), name
