"""Train a small world model on random-policy frames and save real-vs-reconstruction PNG.

    python scripts/reconstruction_grid.py [--game Breakout] [--frames 2000] [--updates 200]
        [--out /tmp/drama_reconstruction.png] [--depth 4] [--d-model 64] [--threads 1]

Frames come from ``drama.envs.make_env`` with uniformly random actions (seed 0) into the DFS
replay buffer; the model trains on 4 x 16 sequences with lr 1e-3 and no warm-up (a debug
setting, not the paper's). The grid shows 8 *held-out* frames (an env with seed 1), real in the
top row and the decoded posterior sample (eval mode) in the bottom row, upscaled 4x. Prints
the loss curve every 25 updates.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

from drama.envs import make_env
from drama.replay import ReplayBuffer, ReplayConfig
from drama.run import random_transitions
from drama.world_model import WorldModel, WorldModelConfig


def random_frames(game: str, seed: int, steps: int, rb: ReplayBuffer | None = None) -> np.ndarray:
    """Run a uniform random policy; store transitions in ``rb`` if given; return the frames."""
    env = make_env(game, seed=seed)
    frames = []
    for obs, a, r, terminal, first in random_transitions(env, steps, seed,
                                                         np.random.default_rng(seed)):
        frames.append(obs)
        if rb is not None:
            rb.add(obs, a, r, terminal, first)
    env.close()
    return np.stack(frames)  # (steps, 64, 64, 3) uint8


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--game", default="Breakout")
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--updates", type=int, default=200)
    ap.add_argument("--depth", type=int, default=4, help="encoder/decoder base channels")
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="/tmp/drama_reconstruction.png")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    rb = ReplayBuffer(ReplayConfig(capacity=args.frames), seed=0)
    num_actions = make_env(args.game, seed=0).action_space.n
    random_frames(args.game, 0, args.frames, rb)
    held_out = random_frames(args.game, 1, 400)[::50]  # (8, 64, 64, 3), spread over time

    cfg = WorldModelConfig(d_model=args.d_model, encoder_depth=args.depth, head_hidden=64,
                           lr=1e-3, warmup_updates=0)  # fmt: skip
    wm = WorldModel(cfg, num_actions, device="cpu")  # CPU-only script: torch backend
    t0 = time.perf_counter()
    for u in range(args.updates):
        m = wm.update(rb.sample_world_model(4, 16))
        if u % 25 == 0 or u == args.updates - 1:
            print(f"update {u:4d}  {time.perf_counter() - t0:6.1f}s  "
                  + "  ".join(f"{k} {float(m[k]):.3f}" for k in
                              ("loss/rec", "loss/rew", "loss/term", "kl/dyn")))  # fmt: skip

    wm.eval()
    with torch.no_grad():
        obs = torch.from_numpy(held_out)
        recon = wm.decode(wm.sample(wm.encode(obs)))  # (8, 64, 64, 3) in [0, 1]
        mse = (recon - obs.float() / 255).square().sum((1, 2, 3)).mean()
    recon_u8 = (recon.numpy() * 255).round().clip(0, 255).astype(np.uint8)
    grid = np.concatenate([np.concatenate(list(held_out), 1), np.concatenate(list(recon_u8), 1)])
    grid = cv2.resize(grid, None, fx=4, fy=4, interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(args.out, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(f"held-out reconstruction loss {float(mse):.1f} (sum over 64x64x3, [0,1] scale); "
          f"wrote {args.out}: top real, bottom reconstruction")


if __name__ == "__main__":
    main()
