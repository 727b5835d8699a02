"""Env steps/s of the full Drama training loop (act + store + one world-model update + one
actor-critic update per env step) at a preset, on a real Atari game.

    python benchmarks/train_loop.py --preset atari100k --device cpu --game Pong --measure 3

Fills the replay with the preset's random warm-up (1,032 steps at the paper preset; not timed),
runs ``--warm`` training steps (not timed), then times ``--measure`` training steps and prints
env steps/s. Anchors: the official code ~1.7 steps/s on an A100 (~16 h per 100k run).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from drama.config import resolve_config
from drama.train import Trainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--game", default="Pong")
    p.add_argument("--variant", default="drama")
    p.add_argument("--preset", default="atari100k")
    p.add_argument("--device", default="cpu")
    p.add_argument("--warm", type=int, default=1)
    p.add_argument("--measure", type=int, default=3)
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args()
    cfg = resolve_config(args.game, 0, args.variant, args.preset, args.set, device=args.device)
    with tempfile.TemporaryDirectory() as out:
        tr = Trainer(cfg, out)
        tr._t0 = time.time()
        tr._reset_env()
        t = time.time()
        while len(tr.replay) <= cfg.replay.warmup:
            tr.advance()
        fill_s = time.time() - t
        for _ in range(args.warm):
            tr.advance()
        if tr.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.time()
        for _ in range(args.measure):
            tr.advance()
        if tr.device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.time() - t
    print(json.dumps({"game": args.game, "variant": args.variant, "preset": args.preset,
                      "device": str(tr.device), "threads": torch.get_num_threads(),
                      "warmup_fill_s": round(fill_s, 1), "measured_steps": args.measure,
                      "s_per_step": round(dt / args.measure, 3),
                      "env_steps_per_s": round(args.measure / dt, 4)}))


if __name__ == "__main__":
    main()
