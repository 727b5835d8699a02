"""Runs per GPU, measured: 1, 2, 4, 8 concurrent training processes on one GPU, env steps/s and
memory per run, and the recommended ``runs_per_gpu``.

    python benchmarks/gpu_concurrency.py --device cuda --preset atari100k --json OUT.json \
        [--levels 1 2 4 8] [--games Boxing Krull ...] [--set train.compile=on] \
        [--settle 3] [--window 8] [--budget 150]

How: one worker process per run, one game each (the games in order, seed 0), each started
through ``scripts/gpu_pin.sh`` the way the workflow starts its training jobs (``RUNS_PER_GPU`` =
max(levels); ``CUDA_VISIBLE_DEVICES`` is first narrowed to one GPU, the first visible one, so
that all of them share it). A worker builds the trainer of ``drama.train`` (``Trainer``), fills
the replay with the preset's random warm-up and runs ``--warm`` training steps (compilation
included when ``train.compile=on``; games with other action counts compile other graphs), says
it is ready and waits. Workers start level by level (level n starts the ones it adds to the
previous level's, while those wait idle), so a level is measured once its n workers are ready,
with nothing else running; a level whose workers are not ready in time ends the measurement
there (the smaller levels stand). For level n, the n workers train for ``--settle`` seconds and
then a ``--window`` of seconds that every one of them covers (set in wall time, so the n runs
overlap exactly); a run's speed is its training steps in the window over their time. Torch
threads per run: ``min(--max-threads, cores // n)`` (at least 1; a preset with
``train.torch_threads`` set keeps it), as the workflow gives each training job a few cores.

Recorded per level: each run's env steps/s, their total, mean and minimum, threads per run, and
memory per run: ``torch.cuda.max_memory_allocated`` / ``memory_reserved`` in the worker, the
process's GPU memory from ``nvidia-smi --query-compute-apps`` (where nvidia-smi lists it) and
the device total it reports, and the process's peak RSS. Recommended ``runs_per_gpu``: the level
with the highest total env steps/s among those whose mean per-run speed is at least half the
single run's (ties: fewer runs). On the CPU (``--device cpu``) the same runs share the cores:
a rehearsal of the procedure, not a GPU number.

Exit codes: 0 measured (possibly fewer levels, each skipped one says why), 1 not even one
level measured, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_procs import alive, nvidia_smi, pinned, threads_for  # noqa: E402
from train_loop import fill_and_warm  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_GAMES = ("Boxing", "Krull", "Assault", "Gopher", "CrazyClimber", "KungFuMaster",
                 "UpNDown", "Pong")
HALF = 0.5  # a level counts while its mean per-run speed is >= HALF x the single run's


# -- worker ---------------------------------------------------------------------------------
def _emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def _read_ctl(path: Path, last: tuple[int, dict]) -> tuple[int, dict]:
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        return last
    if mtime == last[0]:
        return last
    try:
        return mtime, json.loads(path.read_text())
    except ValueError:  # caught mid-replace (the controller writes atomically; be safe)
        return last


def _memory(torch, cuda: bool) -> dict:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    mem = {"rss_max_mib": round(rss)}
    if cuda:
        mem.update(max_allocated_mib=round(torch.cuda.max_memory_allocated() / 2**20),
                   reserved_mib=round(torch.cuda.memory_reserved() / 2**20))
    return mem


def worker(args) -> int:
    """One training process: prepare, report ready, then train in the windows the control
    file names (``{"phase", "active", "threads", "t0", "t1", "stop"}``) and report each."""
    t_start = time.time()
    import torch

    import drama.train as train_mod
    from drama.config import resolve_config

    cfg = resolve_config(args.game, 0, "drama", args.preset, args.set, device=args.device)
    ctl_path = Path(args.ctl)
    with tempfile.TemporaryDirectory(prefix=f"conc_{args.game}_") as out:
        tr = train_mod.Trainer(cfg, out)
        cuda = tr.device.type == "cuda"
        fixed_threads = cfg.train.torch_threads > 0
        fill_s, warm_s = fill_and_warm(
            tr, args.warm, torch.cuda.synchronize if cuda else (lambda: None))
        _emit({"event": "ready", "worker": args.index, "game": args.game, "pid": os.getpid(),
               "device": str(tr.device), "compile": tr.compile_info,
               "visible_gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
               "gpu_pin_slot": os.environ.get("GPU_PIN_SLOT"),
               "prepare_s": round(time.time() - t_start, 1), "warmup_fill_s": round(fill_s, 1),
               "warm_steps": args.warm, "warm_s": round(warm_s, 1), **_memory(torch, cuda)})
        ctl: tuple[int, dict] = (0, {})
        phase, stamps, reported = None, [], True
        checked = time.time()
        while True:
            ctl = _read_ctl(ctl_path, ctl)
            c = ctl[1]
            if c.get("stop"):
                break
            if time.time() - checked > 1.0:  # the controller gone (killed): end too
                checked = time.time()
                if not alive(args.controller_pid):
                    break
            if c.get("phase") != phase and args.index in c.get("active", []):
                phase, stamps, reported = c["phase"], [], False
                threads = cfg.train.torch_threads if fixed_threads else int(c["threads"])
                torch.set_num_threads(threads)
            now = time.time()
            if not reported and now < c["t1"]:
                # acting reads the action on the host, so each step waits for the previous
                # step's GPU work: the step rate over the window is the training rate
                tr.advance()
                stamps.append(time.time())
                continue
            if not reported:
                win = [s for s in stamps if c["t0"] <= s <= c["t1"]]
                rate = (len(win) - 1) / (win[-1] - win[0]) if len(win) >= 2 else None
                _emit({"event": "window", "phase": phase, "worker": args.index,
                       "game": args.game, "pid": os.getpid(), "threads": torch.get_num_threads(),
                       "steps_in_window": len(win),
                       "env_steps_per_s": None if rate is None else round(rate, 3),
                       "env_steps": tr.step, **_memory(torch, cuda)})
                reported = True
            time.sleep(0.02)
    return 0


# -- controller -----------------------------------------------------------------------------
def _write_ctl(path: Path, ctl: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(ctl))
    os.replace(tmp, path)


def _records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass  # a line being written
    return out


def _tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text()[-n:]
    except OSError:
        return ""


def recommend(levels: list[dict]) -> dict:
    """The recommended runs per GPU from the measured levels (see the module's docstring)."""
    ok = [lv for lv in levels if lv.get("status") == "measured"]
    single = next((lv for lv in ok if lv["runs"] == 1), None)
    if single is None:
        return {"runs_per_gpu": None, "why": "the single run was not measured"}
    bar = HALF * single["mean_per_run_env_steps_per_s"]
    cands = [lv for lv in ok if lv["mean_per_run_env_steps_per_s"] >= bar]
    best = max(cands, key=lambda lv: (lv["total_env_steps_per_s"], -lv["runs"]))
    return {"runs_per_gpu": best["runs"], "total_env_steps_per_s": best["total_env_steps_per_s"],
            "per_run_env_steps_per_s": best["mean_per_run_env_steps_per_s"],
            "single_run_env_steps_per_s": single["mean_per_run_env_steps_per_s"],
            "rule": f"highest total env steps/s among the levels whose mean per-run speed is >= "
                    f"{HALF:g} x the single run's ({bar:.3g})",
            "levels_meeting_rule": [lv["runs"] for lv in cands]}


def _kill(p: subprocess.Popen) -> None:
    """SIGKILL a worker's process group (gpu_pin.sh, flock, python)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


def _stop_all(procs: list[subprocess.Popen], ctl_path: Path, grace: float = 8.0) -> None:
    _write_ctl(ctl_path, {"stop": True})
    deadline = time.time() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            pass
    for p in procs:  # each worker leads its own process group (gpu_pin.sh, flock, python)
        if p.poll() is None:
            _kill(p)


def measure(args) -> dict:
    t_start = time.time()
    deadline = t_start + args.budget
    levels_wanted = sorted(set(args.levels))
    n_max = max(levels_wanted)
    if len(args.games) < n_max:
        raise ValueError(f"--levels up to {n_max} need {n_max} games, got {len(args.games)}: "
                         f"{args.games}")
    cores = os.cpu_count() or 1
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu_concurrency_"))
    work.mkdir(parents=True, exist_ok=True)
    ctl_path = work / "ctl.json"
    _write_ctl(ctl_path, {"phase": 0, "active": []})
    base_env = {**os.environ, "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    if args.device.startswith("cuda"):  # one GPU for all: gpu_pin.sh then pins every slot to it
        first = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0] or "0"
        base_env["CUDA_VISIBLE_DEVICES"] = first
    lock_dir = work / "gpu_slots"
    sets = [a for s in args.set for a in ("--set", s)]
    procs: dict[int, subprocess.Popen] = {}
    logs = {i: (work / f"worker{i}.jsonl", work / f"worker{i}.log") for i in range(n_max)}
    pinning = None

    def launch(indices: list[int], level: int) -> None:
        """Start these workers together; the ones already running wait idle meanwhile."""
        nonlocal pinning
        env = {**base_env, "OMP_NUM_THREADS": str(threads_for(level, cores, args.max_threads)),
               # compiling (train.compile=on) side by side: a share of the cores each
               "TORCHINDUCTOR_COMPILE_THREADS": str(max(1, cores // len(indices)))}
        for i in indices:
            cmd, pinning = pinned(
                [sys.executable, str(Path(__file__).resolve()), "--worker", "--index", str(i),
                 "--game", args.games[i], "--preset", args.preset, "--device", args.device,
                 "--warm", str(args.warm), "--ctl", str(ctl_path),
                 "--controller-pid", str(os.getpid()), *sets], n_max, lock_dir)
            with open(logs[i][0], "w") as fo, open(logs[i][1], "w") as fe:
                procs[i] = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env, cwd=ROOT,
                                            start_new_session=True)

    result: dict = {"device": args.device, "preset": args.preset, "sets": args.set,
                    "cores": cores, "max_threads": args.max_threads, "settle_s": args.settle,
                    "window_s": args.window, "budget_s": args.budget, "work_dir": str(work),
                    "cuda_visible_devices": base_env.get("CUDA_VISIBLE_DEVICES"),
                    "workers": [], "levels": []}
    need = args.settle + args.window + 5  # a level's settle + window + 5 s to report
    ready: dict[int, dict] = {}
    failed: dict[int, str] = {}
    try:
        blocked = None
        for phase, n in enumerate(levels_wanted, start=1):
            level = {"runs": n}
            result["levels"].append(level)
            if blocked:
                level.update(status="skipped", why=blocked)
                continue
            new = [i for i in range(n) if i not in procs]
            if new:  # workers are started level by level: the idle ones do not disturb this
                launch(new, n)
            while time.time() < deadline - need and not all(i in ready or i in failed
                                                            for i in range(n)):
                for i in range(n):
                    if i in ready or i in failed:
                        continue
                    rec = next((r for r in _records(logs[i][0]) if r.get("event") == "ready"),
                               None)
                    if rec is not None:
                        ready[i] = {**rec, "started_for_level": n}
                    elif procs[i].poll() is not None:
                        failed[i] = (f"exited {procs[i].returncode} before ready: "
                                     f"{_tail(logs[i][1])}")
                time.sleep(0.2)
            missing = [i for i in range(n) if i not in ready]
            if missing:
                for i in missing:
                    failed.setdefault(i, f"not ready {time.time() - t_start:.0f} s into the "
                                         f"part's {args.budget:.0f} s budget")
                    _kill(procs[i])
                level.update(status="skipped", why=f"workers {missing} not ready: "
                             + "; ".join(failed[i][:300] for i in missing))
                blocked = f"the {n}-run level's workers were not ready"
                continue
            if time.time() + need > deadline:
                level.update(status="skipped", why=f"budget: {need:.0f} s needed, "
                             f"{max(0, deadline - time.time()):.0f} s left")
                blocked = "budget"
                continue
            active = list(range(n))
            threads = threads_for(n, cores, args.max_threads)
            t0 = time.time() + args.settle
            t1 = t0 + args.window
            _write_ctl(ctl_path, {"phase": phase, "active": active, "threads": threads,
                                  "t0": t0, "t1": t1})
            time.sleep(max(0.0, t0 + args.window / 2 - time.time()))
            smi = nvidia_smi()
            recs: dict[int, dict] = {}
            while time.time() < deadline and len(recs) < n:
                for i in active:
                    if i in recs:
                        continue
                    rec = next((r for r in _records(logs[i][0]) if r.get("event") == "window"
                                and r.get("phase") == phase), None)
                    if rec is not None:
                        recs[i] = rec
                    elif procs[i].poll() is not None:
                        recs[i] = {"worker": i, "game": args.games[i],
                                   "error": f"exited {procs[i].returncode}: "
                                            f"{_tail(logs[i][1])}"}
                time.sleep(0.1)
            runs = []
            for i in active:
                rec = dict(recs.get(i) or {"worker": i, "game": args.games[i],
                                            "error": "no window report within the budget"})
                rec.pop("event", None)
                if smi and "process_mib" in smi and rec.get("pid") in smi["process_mib"]:
                    rec["nvidia_smi_mib"] = smi["process_mib"][rec["pid"]]
                runs.append(rec)
            rates = [r.get("env_steps_per_s") for r in runs]
            got = sorted({r["threads"] for r in runs if "threads" in r})
            level.update(threads_asked=threads,
                         threads_per_run=got[0] if len(got) == 1 else got or None,
                         window=[round(t0, 3), round(t1, 3)], runs_detail=runs, nvidia_smi=smi)
            if any(r is None for r in rates):
                level.update(status="failed", why="a run has no speed in the window: "
                             + "; ".join(f"worker {r['worker']}: "
                                         f"{r.get('error') or r.get('steps_in_window')} steps"
                                         for r in runs if r.get("env_steps_per_s") is None))
                continue
            level.update(status="measured",
                         total_env_steps_per_s=round(sum(rates), 3),
                         mean_per_run_env_steps_per_s=round(sum(rates) / n, 3),
                         min_per_run_env_steps_per_s=min(rates))
    finally:
        _stop_all(list(procs.values()), ctl_path)
    for i in range(n_max):
        rec = ready.get(i) or {"worker": i, "game": args.games[i]}
        if i not in ready:
            rec["error"] = failed.get(i, "not started (a smaller level did not complete)")
        result["workers"].append(rec)
    result["pinning"] = pinning
    result["recommendation"] = recommend(result["levels"])
    result["seconds"] = round(time.time() - t_start, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--preset", default="atari100k")
    p.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--games", nargs="+", default=list(DEFAULT_GAMES))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--warm", type=int, default=3, help="training steps before ready "
                   "(compilation with train.compile=on)")
    p.add_argument("--settle", type=float, default=3.0, help="seconds trained before a window")
    p.add_argument("--window", type=float, default=8.0, help="seconds measured per level")
    p.add_argument("--budget", type=float, default=150.0, help="seconds for everything")
    p.add_argument("--max-threads", type=int, default=4,
                   help="torch threads of a run that has the cores to itself (the workflow's 4)")
    p.add_argument("--json", default=None, help="write the result here (else stdout)")
    p.add_argument("--work", default=None, help="workers' files (default: a new temp dir)")
    # worker mode
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--game", default=None, help=argparse.SUPPRESS)
    p.add_argument("--ctl", default=None, help=argparse.SUPPRESS)
    p.add_argument("--controller-pid", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    # SIGTERM (the check's timeout): stop the workers on the way out (finally in measure())
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if any(n < 1 for n in args.levels):
        p.error(f"--levels must be positive, got {args.levels}")
    try:
        result = measure(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=1)
    if args.json:
        Path(args.json).write_text(text)
    else:
        print(text)
    rec = result["recommendation"]
    for lv in result["levels"]:
        if lv["status"] == "measured":
            print(f"{lv['runs']} run(s), {lv['threads_per_run']} torch thread(s) each: "
                  f"{lv['total_env_steps_per_s']:.2f} env steps/s in total, "
                  f"{lv['mean_per_run_env_steps_per_s']:.2f} per run", file=sys.stderr)
        else:
            print(f"{lv['runs']} run(s): {lv['status']} ({lv.get('why')})", file=sys.stderr)
    print(f"recommended runs_per_gpu: {rec['runs_per_gpu']} ({rec.get('rule', rec.get('why'))})",
          file=sys.stderr)
    return 0 if rec["runs_per_gpu"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())
