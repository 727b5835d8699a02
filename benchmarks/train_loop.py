"""Env steps/s of the full Drama training loop (act + store + one world-model update + one
actor-critic update per env step) at a preset, on a real Atari game, with a per-part breakdown.

    python benchmarks/train_loop.py --preset debug --game Boxing --measure 20
    python benchmarks/train_loop.py --preset debug --game Boxing --measure 20 --baseline 08726a6
    python benchmarks/train_loop.py --preset atari100k --device cuda --set train.compile=on

Fills the replay with the preset's random warm-up (1,032 steps at the paper preset; not timed),
runs ``--warm`` training steps (not timed; with compile on they include the compilation, whose
time is reported as ``warm_s``), then times ``--measure`` training steps and prints one JSON
line: env steps/s and the mean milliseconds per env step of each part: ``wm_update`` (world-
model update), ``imagination`` (the 1,024 x 16 rollout incl. encoding its context frames),
``ac_update`` (actor-critic loss + step), ``acting`` (the policy's action) and ``env`` (the
emulator step); ``other`` is the rest (replay sampling and storage, bookkeeping). On CUDA each
part synchronises the device when it ends so that its time is its own (slightly slower overall
than an unsynchronised loop).

``--baseline REF`` also runs this same benchmark on the code of git commit REF (a ``git
worktree`` in /tmp), alternating baseline and current runs ``--repeats`` times in this one
invocation so that both see the same machine load, and prints the speed-up of the medians, in
wall time and in process CPU time per step (``cpu_s_per_step``: with one torch thread, the
steadier measure on a shared machine).
``--profile`` then runs as many steps again under torch.profiler and adds where the CPU time
goes: self CPU ms per step of convolution ops (forward + backward), BatchNorm ops and the rest
(profiler overhead included, so compare shares, not speeds).
Anchor: the official code runs ~5.6 env steps/s on an H100 (docs/gpu.md in ../shared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("wm_update", "imagination", "ac_update", "acting", "env")
SYNC_PARTS = ("wm_update", "ac_update", "imagination", "acting")
SYNC_WARNING = "synchronizing CUDA operation"  # torch's sync-debug warning text


class SyncCounter:
    """Counts host-device syncs inside wrapped callables while ``active`` (CUDA only), with
    ``torch.cuda.set_sync_debug_mode("warn")``: torch warns at each synchronising CUDA call (a
    tensor read on the host, a device-to-host copy, ``nonzero``, ...); the warnings are recorded,
    counted per part, and located by the Python line they come from. Explicit
    ``torch.cuda.synchronize()`` calls (the timing's) are outside the wrappers."""

    def __init__(self):
        self.active = False
        self.calls: Counter = Counter()
        self.syncs: Counter = Counter()
        self.where: dict[str, Counter] = {k: Counter() for k in SYNC_PARTS}

    def wrap(self, fn, key):
        import torch

        def wrapper(*args, **kwargs):
            if not self.active:
                return fn(*args, **kwargs)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    out = fn(*args, **kwargs)
                finally:
                    torch.cuda.set_sync_debug_mode(0)
            self.calls[key] += 1
            for w in caught:
                if SYNC_WARNING in str(w.message):
                    self.syncs[key] += 1
                    self.where[key][f"{_short_path(w.filename)}:{w.lineno}"] += 1
                else:  # not ours to swallow
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            return out
        return wrapper

    def result(self) -> dict:
        per = {}
        for k in SYNC_PARTS:
            n = self.calls[k]
            per[k] = {"calls": n, "syncs": self.syncs[k],
                      "syncs_per_call": round(self.syncs[k] / n, 2) if n else None,
                      "where": dict(self.where[k].most_common(8))}
        return {"applicable": True, "method": 'torch.cuda.set_sync_debug_mode("warn"), '
                "warnings counted per call", "per_part": per,
                "per_world_model_update": per["wm_update"]["syncs_per_call"],
                "per_actor_critic_update": per["ac_update"]["syncs_per_call"]}


def _short_path(path: str) -> str:
    p = Path(path)
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        parts = p.parts
        return str(Path(*parts[-3:])) if len(parts) > 3 else path


def _timed(fn, key, acc, sync):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        sync()
        acc[key] += time.perf_counter() - t
        return out
    return wrapper


def fill_and_warm(tr, warm: int, sync) -> tuple[float, float]:
    """A fresh trainer's first episode, random play until the replay passes its warm-up, then
    ``warm`` training steps (first-call costs: allocation, autotuning, compilation);
    (fill seconds, warm seconds)."""
    tr.reset_env()
    t = time.time()
    while len(tr.replay) <= tr.cfg.replay.warmup:
        tr.advance()
    fill_s, t = time.time() - t, time.time()
    for _ in range(warm):
        tr.advance()
    sync()
    return fill_s, time.time() - t


def measure(args) -> dict:
    import torch

    import drama.train as train_mod
    from drama.config import resolve_config

    cfg = resolve_config(args.game, 0, args.variant, args.preset, args.set, device=args.device)
    with tempfile.TemporaryDirectory() as out:
        tr = train_mod.Trainer(cfg, out)
        cuda = tr.device.type == "cuda"
        sync = torch.cuda.synchronize if cuda else (lambda: None)
        acc = dict.fromkeys(PARTS, 0.0)
        counter = SyncCounter()
        syncs = counter.wrap if cuda else (lambda fn, key: fn)
        tr.wm.update = _timed(syncs(tr.wm.update, "wm_update"), "wm_update", acc, sync)
        tr.ac.update = _timed(syncs(tr.ac.update, "ac_update"), "ac_update", acc, sync)
        train_mod.imagine = _timed(syncs(train_mod.imagine, "imagination"), "imagination", acc,
                                   sync)
        tr.actor.act = _timed(syncs(tr.actor.act, "acting"), "acting", acc, sync)
        tr.env.step = _timed(tr.env.step, "env", acc, sync)
        fill_s, warm_s = fill_and_warm(tr, args.warm, sync)
        for k in acc:
            acc[k] = 0.0
        t, c = time.perf_counter(), time.process_time()
        for _ in range(args.measure):
            tr.advance()
        sync()
        dt, cpu = time.perf_counter() - t, time.process_time() - c
        ms = {k: round(1e3 * v / args.measure, 2) for k, v in acc.items()}
        count = args.count_syncs if args.count_syncs is not None else (3 if cuda else 0)
        if cuda and count > 0:
            counter.active = True
            for _ in range(count):
                tr.advance()
            counter.active = False
            host_syncs = {**counter.result(), "counted_steps": count}
        elif cuda:
            host_syncs = {"applicable": True, "counted_steps": 0, "why": "--count-syncs 0"}
        else:
            host_syncs = {"applicable": False,
                          "why": f"device {tr.device}: no host-device syncs to count"}
        memory = ({"max_allocated": round(torch.cuda.max_memory_allocated() / 2**20),
                   "reserved": round(torch.cuda.memory_reserved() / 2**20)} if cuda else None)
        prof = _profile(tr, args.measure) if args.profile else None
    ms["other"] = round(1e3 * dt / args.measure - sum(ms.values()), 2)
    return {"game": args.game, "variant": args.variant, "preset": args.preset,
            "device": str(tr.device), "threads": torch.get_num_threads(),
            "compile": getattr(tr, "compile_info", {"setting": "n/a (baseline code)"}),
            "warmup_fill_s": round(fill_s, 1), "warm_steps": args.warm, "warm_s": round(warm_s, 1),
            "measured_steps": args.measure, "s_per_step": round(dt / args.measure, 4),
            "env_steps_per_s": round(args.measure / dt, 3),
            "cpu_s_per_step": round(cpu / args.measure, 4), "ms_per_step": ms,
            "host_syncs": host_syncs, "gpu_memory_mib": memory,
            **({"profile": prof} if prof is not None else {})}


OP_KINDS = (("convolution", ("conv",)), ("batch_norm", ("batch_norm",)))


def _profile(tr, steps: int) -> dict:
    """``steps`` more training steps under torch.profiler (after the timed window, which it
    would slow down): self CPU ms per step of convolution ops (forward and backward), BatchNorm
    ops and the rest, their shares, and the ten costliest ops."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            tr.advance()
    ops = [(e.key, e.self_cpu_time_total / 1e3 / steps) for e in prof.key_averages()]
    total = sum(ms for _, ms in ops)
    kinds = dict.fromkeys([k for k, _ in OP_KINDS] + ["other"], 0.0)
    for name, ms in ops:
        kind = next((k for k, pats in OP_KINDS if any(p in name for p in pats)), "other")
        kinds[kind] += ms
    return {"profiled_steps": steps, "self_cpu_ms_per_step": round(total, 1),
            "by_kind_ms": {k: round(v, 1) for k, v in kinds.items()},
            "by_kind_share": {k: round(v / total, 3) for k, v in kinds.items()},
            "top_ops_ms": {n: round(ms, 2) for n, ms in sorted(ops, key=lambda o: -o[1])[:10]}}


def _baseline_tree(ref: str) -> Path:
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref], check=True,
                         capture_output=True, text=True).stdout.strip()
    path = Path(tempfile.gettempdir()) / f"drama_baseline_{sha}"
    if not (path / "drama").exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), sha],
                       check=True, capture_output=True)
    return path


def _child(tree: Path, argv: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    res = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", *argv],
                         env=env, capture_output=True, text=True, cwd=str(tree))
    if res.returncode != 0:
        raise RuntimeError(f"benchmark in {tree} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--game", default="Pong")
    p.add_argument("--variant", default="drama")
    p.add_argument("--preset", default="atari100k")
    p.add_argument("--device", default="cpu")
    p.add_argument("--warm", type=int, default=1)
    p.add_argument("--measure", type=int, default=3)
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--count-syncs", type=int, default=None, metavar="N",
                   help="CUDA: count host-device syncs over N more steps (default 3; 0: off)")
    p.add_argument("--baseline", default=None, metavar="REF",
                   help="also run the code of git commit REF, alternating, and compare")
    p.add_argument("--baseline-set", action="append", default=[],
                   help="--set values for the baseline run only (default: none)")
    p.add_argument("--repeats", type=int, default=2, help="alternations with --baseline")
    p.add_argument("--profile", action="store_true",
                   help="then profile as many steps again: self CPU time by op kind")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args, _ = p.parse_known_args()
    if args.profile and args.baseline is not None:
        p.error("--profile profiles the working tree alone; leave out --baseline")
    if args.child or args.baseline is None:
        print(json.dumps(measure(args)), flush=True)
        return
    common = ["--game", args.game, "--variant", args.variant, "--preset", args.preset,
              "--device", args.device, "--warm", str(args.warm), "--measure", str(args.measure)]
    mine = common + [a for s in args.set for a in ("--set", s)]
    base = common + [a for s in args.baseline_set for a in ("--set", s)]
    tree = _baseline_tree(args.baseline)
    runs: dict[str, list[dict]] = {"baseline": [], "current": []}
    for _ in range(args.repeats):
        runs["baseline"].append(_child(tree, base))
        print(json.dumps({"baseline": args.baseline, **runs["baseline"][-1]}), flush=True)
        runs["current"].append(_child(ROOT, mine))
        print(json.dumps({"current": "working tree", **runs["current"][-1]}), flush=True)
    med = {k: statistics.median(r["env_steps_per_s"] for r in v) for k, v in runs.items()}
    cpu = {k: statistics.median(r["cpu_s_per_step"] for r in v) for k, v in runs.items()}
    print(json.dumps({"summary": f"{args.preset} {args.game} {args.device}",
                      "baseline_ref": args.baseline, "repeats": args.repeats,
                      "baseline_env_steps_per_s": med["baseline"],
                      "current_env_steps_per_s": med["current"],
                      "speedup": round(med["current"] / med["baseline"], 2),
                      "baseline_cpu_s_per_step": cpu["baseline"],
                      "current_cpu_s_per_step": cpu["current"],
                      "speedup_cpu_time": round(cpu["baseline"] / cpu["current"], 2)}),
          flush=True)


if __name__ == "__main__":
    main()
