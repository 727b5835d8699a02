"""The smoke grid through the SLURM profile on a real one-node SLURM cluster (slurmctld + slurmd +
munged on localhost, started by scripts/slurm_local_start.sh and stopped by PID), and a training
job killed by its time limit, resubmitted by the profile's retries, resumed from its checkpoint.

Runs where it can install/start SLURM (root with apt-get, or SLURM already installed). In CI
(CI env var set) it must run: not being able to is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import assert_same_run, start_logged, wait_ok
from drama.run_io import read_metrics
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
        logs = sorted(wd.glob("results/logs/runs/*/*/*/seed*/train.log"))
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


PREEMPT_OVERRIDES = {  # a small agent, so a step is cheap and the run is mostly steps
    "replay.warmup": 100, "train.eval_every": 0, "train.final_eval_episodes": 1,
    "train.checkpoint_every": 50, "train.log_every": 50, "train.deterministic": "true",
    "world_model.d_model": 32, "world_model.encoder_depth": 2, "world_model.stoch": 4,
    "world_model.classes": 4, "actor_critic.imag_batch": 8, "actor_critic.imag_horizon": 4,
    "train.wm_batch": 2, "train.wm_seq_len": 8,
}


def _start_trainer(out: Path, steps: int) -> subprocess.Popen:
    """Start the grid's training run outside SLURM, uninterrupted (output in out.log)."""
    cmd = [sys.executable, "-m", "drama.train", "--game", "Pong", "--seed", "0", "--variant",
           "drama", "--preset", "debug", "--device", "cpu", "--steps", str(steps),
           "--out", str(out)]
    for k, v in PREEMPT_OVERRIDES.items():
        cmd += ["--set", f"{k}={v}"]
    return start_logged(cmd, Path(f"{out}.log"), {**os.environ, "OMP_NUM_THREADS": "1"})


def _finish_trainer(proc: subprocess.Popen, out: Path) -> dict:
    """Wait for a run started by _start_trainer; its run_info."""
    wait_ok(proc, Path(f"{out}.log"), 900)
    return json.loads((out / "run_info.json").read_text())


def _training_rate(run_dir: Path) -> float:
    """Env steps per second in the last logged window of a run (metrics.jsonl)."""
    rows = read_metrics(run_dir / "metrics.jsonl")
    return [r for r in rows if "perf/env_steps_per_s" in r][-1]["perf/env_steps_per_s"]


@pytest.mark.slow
def test_time_limited_train_job_is_resubmitted_and_resumes(tmp_path):
    """A train job with a one-minute limit: SLURM sends SIGTERM at the limit, the trainer saves
    a checkpoint and exits, Snakemake resubmits the job (the profile's retries), the next
    attempt resumes; the finished run equals an uninterrupted run of the same settings."""
    why = _why_not_runnable()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the SLURM test, but: {why}")
        pytest.skip(why)
    # Size the run to this machine: ~110 s of training, so the first attempt (killed 60-90 s
    # after it starts, SLURM checks limits every 30 s) cannot finish and the second one
    # usually can. The rate is the calibration's last logged window (steps 151-200, all
    # training); its whole wall time would count the 100 warm-up steps, which do not train.
    calibration = _start_trainer(tmp_path / "calibration", 200)
    ref_proc = None
    state = tmp_path / "slurm"
    start = ROOT / "scripts" / "slurm_local_start.sh"
    stop = ROOT / "scripts" / "slurm_local_stop.sh"
    try:
        up = subprocess.run(["bash", str(start), str(state)], capture_output=True, text=True,
                            timeout=300)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
        wd = copy_workflow(tmp_path / "wf")
        _finish_trainer(calibration, tmp_path / "calibration")  # started before the cluster
        rate = _training_rate(tmp_path / "calibration")
        steps = PREEMPT_OVERRIDES["replay.warmup"] + max(300, int(rate * 110))
        # the same run, uninterrupted, no SLURM, on the second core while the SLURM job runs
        # (one thread each; sharing the machine only slows the SLURM job's first attempt)
        ref_proc = _start_trainer(tmp_path / "reference", steps)
        grid = {"games": ["Pong"], "seeds": [0], "variants": ["drama"], "preset": "debug",
                "steps": steps, "device": "cpu", "trainer_overrides": PREEMPT_OVERRIDES}
        (wd / "preempt.yaml").write_text(yaml.safe_dump(grid))
        # the profile as shipped, with a one-minute limit for the train job and more retries
        # than its 2, for a loaded machine
        cmd = ["timeout", "-s", "INT", "1200", sys.executable, "-m", "snakemake", "runs",
               "--profile", "slurm", "--configfile", "preempt.yaml",
               "--workflow-profile", "profiles/cpu",
               "--default-resources", "slurm_partition=debug", "mem_mb=2000",
               "--set-resources", "train:runtime=1", "--retries", "6",
               "--seconds-between-status-checks", "2",
               "--slurm-init-seconds-before-status-checks", "2"]
        run = subprocess.run(cmd, cwd=wd, env=workflow_env(), capture_output=True, text=True,
                             timeout=1260)
        out = run.stdout + run.stderr
        assert run.returncode == 0, out[-5000:]
        jobcomp = (state / "log" / "jobcomp.log").read_text()
        states = re.findall(r"JobState=(\w+)", jobcomp)
        assert "TIMEOUT" in states and states[-1] == "COMPLETED", jobcomp[-3000:]
        assert set(states) <= {"TIMEOUT", "COMPLETED"}, jobcomp[-3000:]
        (run_dir,) = wd.glob("results/runs/*/Pong/drama/seed0")
        (log,) = wd.glob("results/logs/runs/*/Pong/drama/seed0/train.log")
        assert "resumed from" in log.read_text(), log.read_text()[-2000:]
        info = json.loads((run_dir / "run_info.json").read_text())
        ref = _finish_trainer(ref_proc, tmp_path / "reference")
        assert info["env_steps"] == ref["env_steps"] == steps
        assert_same_run(tmp_path / "reference", run_dir)
    finally:
        for proc in (calibration, ref_proc):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        subprocess.run(["bash", str(stop), str(state)], capture_output=True, timeout=60)
