"""A uniformly random policy under the agent's evaluation protocol: the baseline the CPU
learning check (config/cpu_learning.yaml) judges the agent against.

    python -m drama.random_policy --game Boxing --episodes 30 --out random/Boxing.parquet \
        [--preset cpu] [--set env.key=value ...] [--seed 0]

The published random scores (analysis/data/published) come from other protocols (sticky
actions, full action sets, 30 no-op starts, 27k-step caps, ...); ours is the one the agent is
trained and evaluated under (drama.envs), so the random baseline is measured here the way the
trainer evaluates: the same evaluation environment (``make_env(..., evaluation=True)`` with the
preset's/overrides' ``env`` protocol), episode seeds drawn as ``drama.train`` draws its
evaluation seeds (``drama.run.eval_episode_seeds(seed, 0, episodes)``), one uniformly random action
per agent step from the game's action set. Writes one row per episode with the columns of a
run's eval.parquet (variant ``random``, env_step 0, final true), atomically.
Exit codes: 0 done, 2 a user error (unknown game or setting; nothing written).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from drama.config import resolve_config
from drama.evaluate import derive_seed
from drama.run import (SeedStream, atari_env_fn, episode_frame, episode_row, eval_env_seed,
                       eval_episode_seeds)
from drama.run_io import atomic_write_parquet


def random_episodes(game: str, episodes: int, seed: int = 0, preset: str = "atari100k",
                    sets: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """``episodes`` episodes of the random policy; one row per episode (EVAL_COLUMNS)."""
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    cfg = resolve_config(game, seed, "drama", preset, list(sets), device="cpu")
    env = atari_env_fn(cfg)(eval_env_seed(seed, 0), evaluation=True)
    rng = np.random.default_rng(derive_seed(seed, SeedStream.RANDOM_ACTIONS))
    n_actions = int(env.action_space.n)
    rows = []
    for i, episode_seed in enumerate(eval_episode_seeds(seed, 0, episodes)):
        env.reset(seed=episode_seed)
        ret, length, done = 0.0, 0, False
        while not done:
            _, r, term, trunc, _ = env.step(int(rng.integers(n_actions)))
            ret += float(r)
            length += 1
            done = term or trunc
        rows.append(episode_row(cfg, 0, i, ret, length, final=True, variant="random"))
    env.close()
    return episode_frame(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--game", required=True)
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--out", required=True, help="parquet file to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="atari100k",
                   help="preset whose env protocol settings apply (they are the same in all)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="settings as for drama.train (env.* change the protocol)")
    args = p.parse_args(argv)
    t0 = time.time()
    try:
        frame = random_episodes(args.game, args.episodes, args.seed, args.preset, args.set)
        atomic_write_parquet(Path(args.out), frame)
    except (ValueError, OSError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    r = frame["return"]
    se = r.std(ddof=1) / np.sqrt(len(r))
    print(f"random policy, {args.game}: mean return {r.mean():g} +- {se:g} (SE) over {len(r)} "
          f"episodes, mean length {frame['length'].mean():.0f} steps, "
          f"{time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
