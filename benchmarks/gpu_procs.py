"""Process and device helpers shared by the GPU check's parts (benchmarks/gpu_concurrency.py,
benchmarks/gpu_learning.py): pinning a command the way the workflow pins training jobs, thread
shares, nvidia-smi readings, and stopping a run's process group."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def alive(pid: int | None) -> bool:
    if not pid:
        return True
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def parse_compute_apps(text: str) -> dict[int, float]:
    """``nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits``
    output -> {pid: MiB}; lines without numbers ("[N/A]", "No running processes found") are
    left out."""
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) >= 2 and cells[0].isdigit():
            try:
                out[int(cells[0])] = float(cells[1])
            except ValueError:
                pass
    return out


def nvidia_smi() -> dict | None:
    """Per-process GPU memory and the device's used/total memory and utilisation, or None
    without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    res: dict = {}
    try:
        apps = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                               "--format=csv,noheader,nounits"], capture_output=True,
                              text=True, timeout=10).stdout
        res["process_mib"] = parse_compute_apps(apps)
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=memory.used,memory.total,"
                              "utilization.gpu", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout.splitlines()
        if gpu:
            used, total, util = (float(x) for x in gpu[0].split(",")[:3])
            res.update(used_mib=used, total_mib=total, utilization_pct=util)
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        res["error"] = f"{type(e).__name__}: {e}"
    return res


def pinned(cmd: list[str], runs_per_gpu: int, lock_dir: Path) -> tuple[list[str], str]:
    """``cmd`` started through ``scripts/gpu_pin.sh`` as the workflow starts a training job,
    and how it is pinned. gpu_pin.sh needs flock(1); without it the command runs as is (the
    callers have already narrowed CUDA_VISIBLE_DEVICES to one GPU) and the note says so."""
    if shutil.which("flock") is None:
        return cmd, "not through gpu_pin.sh: flock(1) missing; CUDA_VISIBLE_DEVICES narrowed"
    return (["bash", str(ROOT / "scripts" / "gpu_pin.sh"), str(runs_per_gpu), str(lock_dir),
             "--", *cmd], f"scripts/gpu_pin.sh {runs_per_gpu} (slots under {lock_dir})")


def threads_for(n: int, cores: int, max_threads: int) -> int:
    return max(1, min(max_threads, cores // n))


def group_members(pgid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the live (not zombie) processes of process group ``pgid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            state, _ppid, pgrp = text[text.rindex(")") + 2:].split()[:3]
            if int(pgrp) == pgid and state != "Z":
                cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                out.append((int(stat.parent.name), cmd))
        except (OSError, ValueError):
            continue  # ended meanwhile
    return out


def stop_run(p: subprocess.Popen, grace: float) -> str:
    """SIGTERM the run's drama.train process (it checkpoints at the next step boundary and
    exits 143, through gpu_pin.sh), SIGKILL its process group after ``grace`` seconds (e.g. in
    the middle of an evaluation); says which."""
    if p.poll() is not None and not group_members(p.pid):
        return "had ended"
    trainers = [pid for pid, cmd in group_members(p.pid) if "drama.train" in cmd]
    try:
        for pid in trainers or [-p.pid]:  # -pgid: the whole group when no trainer yet
            os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        p.wait(timeout=grace)
        if not group_members(p.pid):
            return "exited after SIGTERM"
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()
    return f"killed (SIGKILL) {grace:.0f} s after SIGTERM"
