"""scripts/gpu_pin.sh: at most RUNS_PER_GPU commands per GPU, each pinned to one GPU.

Real processes and real flock(1) locks; the GPUs are named through CUDA_VISIBLE_DEVICES (the
script only sets that variable for the command, so no GPU is needed to check the pinning).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIN = ROOT / "scripts" / "gpu_pin.sh"


def _start(tmp_path, per_gpu, name, seconds, env_extra):
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    env.update(env_extra)
    cmd = ["bash", str(PIN), str(per_gpu), str(tmp_path / "locks"), "--", "bash", "-c",
           f'echo "$CUDA_VISIBLE_DEVICES $GPU_PIN_SLOT $(date +%s.%N)" > {tmp_path / name}; '
           f"sleep {seconds}"]
    return subprocess.Popen(cmd, env=env)


def test_two_runs_per_gpu_spread_over_gpus_and_a_fifth_waits(tmp_path):
    procs = [_start(tmp_path, 2, f"job{i}", 3, {"CUDA_VISIBLE_DEVICES": "3,5"})
             for i in range(4)]
    time.sleep(1.0)
    late = _start(tmp_path, 2, "job4", 0, {"CUDA_VISIBLE_DEVICES": "3,5"})
    time.sleep(1.0)
    assert not (tmp_path / "job4").exists()  # all 4 slots busy: the fifth waits
    for p in procs + [late]:
        assert p.wait(timeout=60) == 0
    first = [(tmp_path / f"job{i}").read_text().split() for i in range(4)]
    assert sorted(g for g, _, _ in first) == ["3", "3", "5", "5"]  # 2 per GPU, one GPU each
    assert sorted(int(s) for _, s, _ in first) == [0, 1, 2, 3]
    gpu, _, started = (tmp_path / "job4").read_text().split()
    assert gpu in ("3", "5") and float(started) > min(float(t) for *_, t in first) + 2.5


def test_exit_code_passes_through_and_cpu_or_slurm_runs_unpinned(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["CUDA_VISIBLE_DEVICES"] = "0"
    res = subprocess.run(["bash", str(PIN), "1", str(tmp_path / "l"), "--", "bash", "-c",
                          "exit 3"], env=env)
    assert res.returncode == 3
    env["SLURM_JOB_ID"] = "42"  # under SLURM: the scheduler's GPU, no pinning
    env["CUDA_VISIBLE_DEVICES"] = "7"
    out = subprocess.run(["bash", str(PIN), "1", str(tmp_path / "l"), "--", "bash", "-c",
                          'echo "$CUDA_VISIBLE_DEVICES ${GPU_PIN_SLOT:-none}"'], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["7", "none"]
    env.pop("SLURM_JOB_ID")
    env["CUDA_VISIBLE_DEVICES"] = ""  # no GPU visible: unpinned
    out = subprocess.run(["bash", str(PIN), "1", str(tmp_path / "l"), "--", "bash", "-c",
                          'echo "${GPU_PIN_SLOT:-none}"'], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["none"]
    bad = subprocess.run(["bash", str(PIN), "0", str(tmp_path / "l"), "--", "true"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "RUNS_PER_GPU" in bad.stderr
