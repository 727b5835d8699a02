"""How many world-model updates does the reward head need? An offline probe, no acting.

    python benchmarks/reward_probe.py --game Krull --preset cpu [--set KEY=VALUE ...]
        [--steps 5000] [--updates 1000] [--every 100] [--heldout 2000] [--seed 0]
        [--target after] [--score-on train]

Fills a replay with ``--steps`` transitions of a uniformly random policy (the training
environment of drama.train, same protocol), and a held-out set of ``--heldout`` transitions
from other episodes; then trains a fresh world model of the resolved preset on replay batches
(its own wm_batch x wm_seq_len, its replay sampling) and every ``--every`` updates scores the
reward head on every held-out window of wm_seq_len steps: correlation of the predicted with
the real reward, mean |prediction| on rewarded and unrewarded steps, and the loss terms.
Prints one line per evaluation (and the wall time), so the number of updates a preset needs
before its reward head separates rewarded steps can be read off before any agent is trained.
The agent's own replay differs (its policy is not uniform), so this is a lower bound on what
the agent's world model has to learn, not a replacement for drama.diagnose.

``--target before`` (default) is the official alignment: the head on d_t = seq(z_<=t, a_<=t)
predicts r_t, the reward of a_t, before the frame that shows its outcome. ``--target after``
trains and scores the head on d_t against r_{t-1} (the reward of the previous action, whose
outcome o_t the model has seen: DreamerV3's convention), to measure how much of the reward is
predictable only once its outcome is visible. Not an option of the agent. ``--score-on train``
scores the transitions trained on instead of the held-out ones (can the head fit them at all?).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from drama.config import resolve_config
from drama.diagnose import REWARD_EPS, _corr, _mean
from drama.evaluate import derive_seed
from drama.replay import ReplayBuffer
from drama.train import atari_env_fn
from drama.world_model import WorldModel


def collect(env, steps: int, seed: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``steps`` uniformly random transitions of ``env`` from a reset with ``seed``."""
    n = int(env.action_space.n)
    obs, _ = env.reset(seed=seed)
    out = {k: [] for k in ("obs", "action", "reward", "termination", "is_first")}
    first = True
    for _ in range(steps):
        a = int(rng.integers(n))
        nxt, r, term, trunc, info = env.step(a)
        out["obs"].append(obs)
        out["action"].append(a)
        out["reward"].append(float(r))
        out["termination"].append(bool(term) or bool(info.get("life_loss", False)))
        out["is_first"].append(first)
        obs, first = nxt, False
        if term or trunc:
            obs, _ = env.reset()
            first = True
    return {k: np.asarray(v) for k, v in out.items()}


def previous_rewards(reward: np.ndarray, is_first: np.ndarray) -> np.ndarray:
    """r_{t-1} at t (0 at an episode's first step)."""
    prev = np.concatenate([[0.0], reward[:-1]])
    return np.where(is_first, 0.0, prev)


@torch.no_grad()
def score(wm: WorldModel, data: dict[str, np.ndarray], length: int, after: bool,
          chunk: int = 16) -> dict:
    wm.eval()
    n = (len(data["action"]) // length) * length
    obs = torch.as_tensor(data["obs"][:n]).view(-1, length, 64, 64, 3)
    act = torch.as_tensor(data["action"][:n]).view(-1, length)
    pred = []
    for i in range(0, obs.shape[0], chunk):
        z = wm.sample(wm.encode(obs[i:i + chunk]))
        pred.append(wm.reward(wm.observe(z, act[i:i + chunk])).flatten())
    p = torch.cat(pred).numpy().astype(np.float64)
    r = previous_rewards(data["reward"], data["is_first"]) if after else data["reward"]
    r = r[:n].astype(np.float64)
    rewarded = np.abs(r) > REWARD_EPS
    return {"corr": _corr(p, r), "pred_rewarded": _mean(np.abs(p[rewarded])),
            "pred_other": _mean(np.abs(p[~rewarded]))}


def _num(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _rewarded(data: dict[str, np.ndarray]) -> int:
    return int((np.abs(data["reward"]) > REWARD_EPS).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--game", default="Krull")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--steps", type=int, default=5000, help="random-policy transitions trained on")
    ap.add_argument("--heldout", type=int, default=2000, help="held-out transitions scored")
    ap.add_argument("--updates", type=int, default=1000)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", choices=("before", "after"), default="before",
                    help="reward the head on d_t learns: r_t (official) or r_{t-1}")
    ap.add_argument("--score-on", choices=("heldout", "train"), default="heldout",
                    help="transitions the reward head is scored on")
    args = ap.parse_args()
    cfg = resolve_config(args.game, args.seed, "drama", args.preset, args.set, device="cpu")
    if cfg.train.torch_threads > 0:
        torch.set_num_threads(cfg.train.torch_threads)
    torch.manual_seed(args.seed)
    env = atari_env_fn(cfg)(derive_seed(args.seed, 101), evaluation=False)
    num_actions = int(env.action_space.n)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    train = collect(env, args.steps, derive_seed(args.seed, 101), rng)
    held = collect(env, args.heldout, derive_seed(args.seed, 102), rng)
    env.close()
    replay = ReplayBuffer(dataclasses.replace(cfg.replay, capacity=max(args.steps, 2)),
                          seed=args.seed)
    for i in range(args.steps):
        replay.add(train["obs"][i], train["action"][i], train["reward"][i],
                   train["termination"][i], train["is_first"][i])
    wm = WorldModel(cfg.world_model, num_actions, device="cpu")
    B, L = cfg.train.wm_batch, cfg.train.wm_seq_len
    after = args.target == "after"
    print(f"{args.game} preset {args.preset} {args.set} target {args.target}: "
          f"{args.steps} train transitions "
          f"({_rewarded(train)} rewarded), held-out {args.heldout} "
          f"({_rewarded(held)} rewarded); batch {B}x{L}; "
          f"collected in {time.time() - t0:.0f} s", flush=True)
    t0 = time.time()
    sums: dict[str, float] = {}
    for u in range(1, args.updates + 1):
        wm.train()
        if after:  # windows of L + 1: frames/actions 1..L, rewards 0..L-1
            batch = replay.sample_world_model(B, L + 1)
            prev = torch.where(batch["is_first"][:, 1:], 0.0, batch["reward"][:, :-1])
            batch = {k: v[:, 1:] for k, v in batch.items()} | {"reward": prev}
        else:
            batch = replay.sample_world_model(B, L)
        m = wm.update(batch)
        for k in ("loss/rew", "loss/rec", "kl/dyn"):
            sums[k] = sums.get(k, 0.0) + float(m[k])
        if u % args.every == 0 or u == args.updates:
            s = score(wm, train if args.score_on == "train" else held, L, after)
            n = args.every if u % args.every == 0 else u % args.every
            print(f"update {u:5d}  {time.time() - t0:6.0f} s  corr {_num(s['corr'], '+.3f')}  "
                  f"|pred| rewarded {_num(s['pred_rewarded'], '.3f')} "
                  f"other {_num(s['pred_other'], '.3f')}  "
                  f"rew {sums['loss/rew'] / n:.4f} rec {sums['loss/rec'] / n:.1f} "
                  f"dyn {sums['kl/dyn'] / n:.2f}", flush=True)
            sums = {}


if __name__ == "__main__":
    main()
