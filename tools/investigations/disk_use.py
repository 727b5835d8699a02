"""Disk use of one run directory per preset.

    python tools/investigations/disk_use.py [--skip-run]

debug (measured): trains the smoke grid's run (Pong, debug preset, the smoke overrides, 160
steps) twice into a temporary directory, once as shipped (the finished run drops the replay from
its checkpoint) and once with ``train.keep_replay=true`` (= the largest checkpoint while the
run trains), and prints the sizes of the files. Then computes (does not run) the debug preset's
full length and the paper preset: replay bytes per transition (from the buffer's storage) times
the transitions held, plus the weights and the two LaProp moments (3 x the saved model state).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from drama.config import resolve_config
from drama.replay import ReplayBuffer
from drama.run import build_agent

SMOKE = ["--game", "Pong", "--seed", "0", "--variant", "drama", "--preset", "debug",
         "--device", "cpu", "--steps", "160", "--set", "replay.warmup=100",
         "--set", "train.final_eval_episodes=2", "--set", "train.eval_every=75",
         "--set", "train.eval_episodes=1"]


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def sizes(run: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(run.iterdir()) if p.is_file()}


def computed(preset: str, transitions: int | None = None) -> tuple[int, int, int]:
    """(replay bytes, model+optimiser bytes, transitions) of ``preset`` (Pong: 6 actions)."""
    cfg = resolve_config("Pong", 0, "drama", preset, device="cpu")
    wm, ac = build_agent(cfg, 6)
    buf = io.BytesIO()
    torch.save({"wm": wm.state_dict(), "ac": ac.state_dict()}, buf)
    models = 3 * buf.getbuffer().nbytes  # weights + LaProp's two moments per parameter
    small = ReplayBuffer(cfg.replay.__class__(**{**cfg.replay.__dict__, "capacity": 1}))
    per = sum(getattr(small, k).element_size() * getattr(small, k)[0].numel()
              for k in ("obs", "action", "reward", "termination", "is_first", "wm_count",
                        "img_count"))
    n = min(transitions or cfg.train.steps, cfg.replay.capacity)
    return per * n, models, n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--skip-run", action="store_true", help="only the computed rows")
    args = p.parse_args()
    if not args.skip_run:
        with tempfile.TemporaryDirectory() as tmp:
            for name, extra in (("as shipped", []), ("keep_replay", ["--set",
                                                                    "train.keep_replay=true"])):
                run = Path(tmp) / name.replace(" ", "_")
                subprocess.run([sys.executable, "-m", "drama.train", *SMOKE, "--out", str(run),
                                *extra], check=True, capture_output=True)
                files = sizes(run)
                print(f"debug, smoke run (160 steps), measured, {name}: total "
                      f"{mb(sum(files.values()))}; " +
                      ", ".join(f"{k} {mb(v)}" for k, v in files.items()))
    for preset, steps in (("debug", None), ("atari100k", None)):
        replay, models, n = computed(preset, steps)
        print(f"{preset} preset, computed: replay {mb(replay)} ({n:,} transitions), weights + "
              f"optimiser {mb(models)}: checkpoint while training up to {mb(replay + models)}, "
              f"after the run {mb(models)} (+ eval/metrics, < 1 MB)")


if __name__ == "__main__":
    main()
