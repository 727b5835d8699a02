"""How many world-model updates does the reward head need? An offline probe, no acting.

    python tools/investigations/reward_probe.py --game Krull --preset cpu [--set KEY=VALUE ...]
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
``--latents mode`` scores with the posterior's most likely class per categorical instead of a
sample (does the noise of sampled latents hide what the head learned?).

``--model supervised`` is a control, no world model: the preset's encoder (same depth, same
LaProp settings and warm-up) on the pair (o_t, o_{t+1}) plus the one-hot a_t, and an MLP head
of the preset's reward-head size, trained by the same two-hot loss on r_t from wm_batch x
wm_seq_len random transitions per update. It sees the outcome frame directly, so it is the
easiest form of the problem: how many updates a convolutional network of this size needs to
tell rewarded transitions from pixels at all.

``--readout EPOCHS`` (world model only): after the last update, freezes the world model and
fits fresh reward heads (the preset's head size, Adam 1e-3, batches of 256, EPOCHS passes over
the training transitions) on its features computed with posterior-mode latents: on d_t (what
the world model's own head reads) and on (z_t, z_{t+1}, a_t) (what the latents hold about the
transition, outcome included), each scored on the held-out transitions. A high readout next to
a low in-model head means the information is there and the head does not learn it; a low
readout means the representation does not carry it.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from drama.config import resolve_config
from drama.diagnose import REWARD_EPS
from drama.distributions import TwoHot
from drama.evaluate import derive_seed
from drama.networks import Encoder, MLPHead
from drama.optim import LaProp, linear_warmup
from drama.replay import ReplayBuffer
from drama.run import atari_env_fn, random_transitions
from drama.world_model import WorldModel


def _mean(x) -> float | None:
    x = np.asarray(x, dtype=np.float64)
    return float(x.mean()) if x.size and np.isfinite(x.mean()) else None


def _corr(a, b) -> float | None:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return None
    c = float(np.corrcoef(a, b)[0, 1])
    return c if np.isfinite(c) else None


def collect(env, steps: int, seed: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``steps`` uniformly random transitions of ``env`` from a reset with ``seed``."""
    keys = ("obs", "action", "reward", "termination", "is_first")
    columns = zip(*random_transitions(env, steps, seed, rng), strict=True)
    return {k: np.asarray(v) for k, v in zip(keys, columns, strict=True)}


def previous_rewards(reward: np.ndarray, is_first: np.ndarray) -> np.ndarray:
    """r_{t-1} at t (0 at an episode's first step)."""
    prev = np.concatenate([[0.0], reward[:-1]])
    return np.where(is_first, 0.0, prev)


def _scores(p: np.ndarray, r: np.ndarray) -> dict:
    rewarded = np.abs(r) > REWARD_EPS
    return {"corr": _corr(p, r), "pred_rewarded": _mean(np.abs(p[rewarded])),
            "pred_other": _mean(np.abs(p[~rewarded]))}


def mode_latents(logits: torch.Tensor) -> torch.Tensor:
    """One-hot of the most likely class of each categorical, flattened like WorldModel.sample."""
    return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype).flatten(-2)


@torch.no_grad()
def features(wm: WorldModel, data: dict[str, np.ndarray], length: int, mode: bool = True,
             chunk: int = 16):
    """Latents z (n, latent) and d (n, d_model) of the first n = whole windows of ``length``
    steps of data: posterior-mode latents (``mode``) or posterior samples."""
    wm.eval()
    n = (len(data["action"]) // length) * length
    obs = torch.as_tensor(data["obs"][:n]).view(-1, length, 64, 64, 3)
    act = torch.as_tensor(data["action"][:n]).view(-1, length)
    zs, ds = [], []
    for i in range(0, obs.shape[0], chunk):
        logits = wm.encode(obs[i:i + chunk])
        z = mode_latents(logits) if mode else wm.sample(logits)
        zs.append(z.flatten(0, 1))
        ds.append(wm.observe(z, act[i:i + chunk]).flatten(0, 1))
    return torch.cat(zs), torch.cat(ds), n


@torch.no_grad()
def score(wm: WorldModel, data: dict[str, np.ndarray], length: int, after: bool,
          mode: bool = False) -> dict:
    """The world model's own reward head on data (see ``features``)."""
    _, d, n = features(wm, data, length, mode)
    p = wm.reward(d).numpy().astype(np.float64)
    r = previous_rewards(data["reward"], data["is_first"]) if after else data["reward"]
    return _scores(p, r[:n].astype(np.float64))


def fit_readout(x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: np.ndarray,
                cfg, epochs: int, seed: int) -> dict:
    """A fresh reward head fitted on (x, y) by two-hot loss; its scores on (x_test, y_test)."""
    torch.manual_seed(seed)
    head = MLPHead(x.shape[1], cfg.head_hidden, cfg.reward_bins)
    twohot = TwoHot(cfg.reward_bins, cfg.reward_low, cfg.reward_high)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(256):
            opt.zero_grad(set_to_none=True)
            twohot.loss(head(x[idx]), y[idx]).mean().backward()
            opt.step()
    with torch.no_grad():
        p = twohot.mean(head(x_test)).numpy().astype(np.float64)
    return _scores(p, y_test.astype(np.float64))


def readouts(wm: WorldModel, train: dict, held: dict, length: int, epochs: int,
             seed: int) -> dict[str, dict]:
    """Readout scores on d_t and on (z_t, z_{t+1}, a_t) (module docstring, --readout)."""
    out = {}
    (z, d, n), (zh, dh, nh) = features(wm, train, length), features(wm, held, length)
    r, rh = torch.as_tensor(train["reward"][:n]).float(), held["reward"][:nh]
    out["d_t"] = fit_readout(d, r, dh, rh, wm.cfg, epochs, seed)

    def pairs(data, z, n):
        t = transition_index({k: v[:n] for k, v in data.items()})
        a = F.one_hot(torch.as_tensor(data["action"][t]), wm.num_actions).float()
        return torch.cat([z[t], z[t + 1], a], -1), data["reward"][t]

    (x, y), (xh, yh) = pairs(train, z, n), pairs(held, zh, nh)
    out["z_t, z_t+1, a_t"] = fit_readout(x, torch.as_tensor(y).float(), xh, yh, wm.cfg,
                                         epochs, seed)
    return out


def transition_index(data: dict[str, np.ndarray]) -> np.ndarray:
    """Indices t whose next frame o_{t+1} belongs to the same episode."""
    t = np.arange(len(data["action"]) - 1)
    return t[~data["is_first"][1:]]


class PairRewardModel(nn.Module):
    """Control: encoder(o_t), encoder(o_{t+1}) and one-hot a_t -> two-hot reward r_t."""

    def __init__(self, cfg, num_actions: int):
        super().__init__()
        self.num_actions = num_actions
        self.encoder = Encoder(cfg.encoder_depth, cfg.encoder_mults, cfg.kernel)
        self.head = MLPHead(2 * self.encoder.out_dim + num_actions, cfg.head_hidden,
                            cfg.reward_bins)
        self.twohot = TwoHot(cfg.reward_bins, cfg.reward_low, cfg.reward_high)
        self.optimizer = LaProp(self.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                weight_decay=cfg.weight_decay)
        self.scheduler = linear_warmup(self.optimizer, cfg.warmup_updates)

    def logits(self, data: dict[str, np.ndarray], t: np.ndarray) -> torch.Tensor:
        frames = torch.as_tensor(np.concatenate([data["obs"][t], data["obs"][t + 1]]))
        x = frames.permute(0, 3, 1, 2).float().div_(255.0)
        f = self.encoder(x)
        a = F.one_hot(torch.as_tensor(data["action"][t]), self.num_actions).float()
        return self.head(torch.cat([f[: len(t)], f[len(t):], a], -1))

    def update(self, data: dict[str, np.ndarray], t: np.ndarray) -> dict[str, float]:
        self.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.twohot.loss(self.logits(data, t),
                                torch.as_tensor(data["reward"][t]).float()).mean()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return {"loss/rew": float(loss.detach()), "loss/rec": 0.0, "kl/dyn": 0.0}

    @torch.no_grad()
    def score(self, data: dict[str, np.ndarray], chunk: int = 512) -> dict:
        self.eval()
        t = transition_index(data)
        p = torch.cat([self.twohot.mean(self.logits(data, t[i:i + chunk]))
                       for i in range(0, len(t), chunk)])
        return _scores(p.numpy().astype(np.float64), data["reward"][t].astype(np.float64))


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
    ap.add_argument("--latents", choices=("sample", "mode"), default="sample",
                    help="posterior latents the world model is scored with")
    ap.add_argument("--readout", type=int, default=0, metavar="EPOCHS",
                    help="fit fresh heads on the frozen world model's features (docstring)")
    ap.add_argument("--model", choices=("world_model", "supervised"), default="world_model",
                    help="supervised: the (o_t, o_{t+1}, a_t) -> r_t control (module docstring)")
    args = ap.parse_args()
    if args.model == "supervised":  # options of the world model only: an error, not ignored
        if args.target == "after":
            ap.error("--model supervised sees o_{t+1} already; --target does not apply")
        if args.latents == "mode" or args.readout:
            ap.error("--latents and --readout apply to the world model, not --model supervised")
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
    supervised = args.model == "supervised"
    if not supervised:  # the control samples transitions from `train` directly
        replay = ReplayBuffer(dataclasses.replace(cfg.replay, capacity=max(args.steps, 2)),
                              seed=args.seed)
        for i in range(args.steps):
            replay.add(train["obs"][i], train["action"][i], train["reward"][i],
                       train["termination"][i], train["is_first"][i])
    model = (PairRewardModel(cfg.world_model, num_actions) if supervised
             else WorldModel(cfg.world_model, num_actions, device="cpu"))
    B, L = cfg.train.wm_batch, cfg.train.wm_seq_len
    after = args.target == "after"
    pairs = transition_index(train)
    print(f"{args.game} preset {args.preset} {args.set} model {args.model} "
          f"target {args.target} latents {args.latents}: "
          f"{args.steps} train transitions "
          f"({_rewarded(train)} rewarded), held-out {args.heldout} "
          f"({_rewarded(held)} rewarded); batch {B}x{L}; "
          f"collected in {time.time() - t0:.0f} s", flush=True)
    t0 = time.time()
    sums: dict[str, float] = {}
    for u in range(1, args.updates + 1):
        if supervised:
            m = model.update(train, rng.choice(pairs, size=B * L))
        elif after:  # windows of L + 1: frames/actions 1..L, rewards 0..L-1
            batch = replay.sample_world_model(B, L + 1)
            prev = torch.where(batch["is_first"][:, 1:], 0.0, batch["reward"][:, :-1])
            batch = {k: v[:, 1:] for k, v in batch.items()} | {"reward": prev}
            m = model.update(batch)
        else:
            m = model.update(replay.sample_world_model(B, L))
        for k in ("loss/rew", "loss/rec", "kl/dyn"):
            sums[k] = sums.get(k, 0.0) + float(m[k])
        if u % args.every == 0 or u == args.updates:
            data = train if args.score_on == "train" else held
            s = (model.score(data) if supervised
                 else score(model, data, L, after, mode=args.latents == "mode"))
            n = args.every if u % args.every == 0 else u % args.every
            print(f"update {u:5d}  {time.time() - t0:6.0f} s  corr {_num(s['corr'], '+.3f')}  "
                  f"|pred| rewarded {_num(s['pred_rewarded'], '.3f')} "
                  f"other {_num(s['pred_other'], '.3f')}  "
                  f"rew {sums['loss/rew'] / n:.4f} rec {sums['loss/rec'] / n:.1f} "
                  f"dyn {sums['kl/dyn'] / n:.2f}", flush=True)
            sums = {}
    if args.readout and not supervised:
        t0 = time.time()
        for name, s in readouts(model, train, held, L, args.readout, args.seed).items():
            print(f"readout on {name}: held-out corr {_num(s['corr'], '+.3f')}  "
                  f"|pred| rewarded {_num(s['pred_rewarded'], '.3f')} "
                  f"other {_num(s['pred_other'], '.3f')}  ({time.time() - t0:.0f} s)",
                  flush=True)


if __name__ == "__main__":
    main()
