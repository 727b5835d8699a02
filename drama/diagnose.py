"""Diagnose a run: what the world model predicts and what the actor optimises, against reality.

``python -m drama.diagnose RUN_DIR [--episodes K] [--max-steps N] [--device cpu] [--json OUT]``

Loads ``RUN_DIR/config.yaml`` and ``RUN_DIR/checkpoint.pt`` (drama.run.load_run: networks
built exactly as the trainer builds them) and reports, as a table and optionally as JSON:

1. ``world_model``: the reward and termination heads on replayed windows (uniformly drawn
   windows of ``train.wm_seq_len`` steps, one parallel ``wm.observe`` pass each). The heads on
   d_t are scored against reward_t / termination_t, the consequences of a_t, exactly as in the
   world-model loss (drama/world_model.py).
2. ``imagination``: rollouts as the actor-critic update sees them (starts from the replay's
   imagination sampler, ``drama.imagination.imagine`` with the run's config): imagined reward,
   lambda-return G, critic value V, the return scale S, the advantage |G - V| / max(1, S), the
   policy entropy against its maximum log|A|, the mean largest action probability, greedy and
   sampled action histograms, and the gradient norms that the policy-gradient term and the
   entropy bonus put on the actor's parameters (which of the two drives the policy).
3. ``real``: the same policy in the run's real environment (``drama.run.atari_env_fn``),
   acting by the run's rule (``drama.evaluate.make_actor``) with sampled actions (training)
   and separately greedy ones (evaluation), ``--episodes`` each, capped at ``--max-steps``:
   real reward per step, the critic's V(s) on the features the actor acted from (only actors
   that expose them: ``ContextActor.last_feat``), the discounted real return from each step
   (gamma of the run, truncated at the episode end or the cap), the critic's fixed point on the
   real rewards (see :func:`matched_return`), episode returns and action histograms.

Nothing is written to the run directory: the replay's DFS counters are copied before drawing,
so the loaded state is never changed (and never saved). Randomness (window draws, latent
samples, sampled actions, episode seeds) derives from ``--seed``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drama.agent import lambda_return
from drama.evaluate import derive_seed, make_actor
from drama.imagination import imagine
from drama.replay import ReplayBuffer
from drama.diagnose_text import format_report
from drama.run import LoadedRun, RunDirError, SeedStream, is_terminal, load_run

_DIAGNOSE = SeedStream.DIAGNOSE
REWARD_EPS = 1e-6  # |r| above this counts as a rewarded step (real rewards are exact)
PRED_REWARD_THRESHOLD = 0.5  # a predicted/imagined |r^| above this counts as "predicts a reward"


DiagnoseError = RunDirError
"""The run directory cannot be diagnosed (missing or corrupt file, mismatching config)."""


# ------------------------------------------------------------------------------------ loading
def _replay_view(replay: ReplayBuffer, seed: int, sampling: str | None = None) -> ReplayBuffer:
    """A replay sharing ``replay``'s frames but with its own counters, generator and sampler."""
    view = copy.copy(replay)
    if sampling is not None:
        view.cfg = dataclasses.replace(replay.cfg, sampling=sampling)
    view.wm_count, view.img_count = replay.wm_count.clone(), replay.img_count.clone()
    view.generator = torch.Generator(device=replay.device)
    view.generator.manual_seed(int(seed))
    return view


# ------------------------------------------------------------------------------------ helpers
def _f(x) -> float | None:
    """A finite float, or None (JSON null) for an undefined value (e.g. a mean of nothing)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _mean(x) -> float | None:
    x = np.asarray(x, dtype=np.float64)
    return _f(x.mean()) if x.size else None


def _corr(a, b) -> float | None:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return None
    return _f(np.corrcoef(a, b)[0, 1])


def _hist(actions, num_actions: int) -> list[int]:
    a = np.asarray(actions, dtype=np.int64).ravel()
    return np.bincount(a, minlength=num_actions).tolist()


def discounted_return(rewards, gamma: float) -> np.ndarray:
    """G_t = sum_k gamma^k r_{t+k} to the end of the (possibly capped) episode."""
    out, g = np.zeros(len(rewards)), 0.0
    for t in range(len(rewards) - 1, -1, -1):
        g = float(rewards[t]) + gamma * g
        out[t] = g
    return out


def matched_return(rewards, terminal, gamma: float, lam: float, form: str) -> np.ndarray:
    """The value the critic converges to on a real reward sequence (its training target's
    fixed point with V = G), per step t of the episode, with ``terminal`` the world model's
    termination flag (game over or life loss):

    ``dreamerv3``: V_t = r_t + gamma (1 - term_t) V_{t+1}, r_t the reward of a_t;
    ``official``: V_t = r'_t + gamma c'_t ((1 - lam) V_t + lam V_{t+1}), with r'_t, c'_t the
    reward and continuation of the transition *into* s_t (r'_t = r_{t-1}, 0 at t = 0), i.e.
    V_t = (r'_t + gamma c'_t lam V_{t+1}) / (1 - gamma c'_t (1 - lam)): about 1.05 x the
    discounted return from the previous step with discount ~0.984 (gamma 0.985, lam 0.95).
    V after the last recorded step is taken as 0.
    """
    n = len(rewards)
    r = np.asarray(rewards, np.float64)
    term = np.asarray(terminal, bool)
    out, v = np.zeros(n), 0.0
    if form == "dreamerv3":
        for t in range(n - 1, -1, -1):
            v = r[t] + gamma * (0.0 if term[t] else 1.0) * v
            out[t] = v
        return out
    if form != "official":
        raise ValueError(f"unknown return form {form!r}")
    r_in = np.concatenate([[0.0], r[:-1]])
    c_in = np.concatenate([[1.0], 1.0 - term[:-1].astype(np.float64)])
    for t in range(n - 1, -1, -1):
        v = (r_in[t] + gamma * c_in[t] * lam * v) / (1.0 - gamma * c_in[t] * (1.0 - lam))
        out[t] = v
    return out


# ------------------------------------------------------------------------------------ 1. model
@torch.no_grad()
def world_model_report(run: LoadedRun, windows: int, seed: int, chunk: int = 16) -> dict:
    """Reward/termination heads vs the replay's real rewards/terminations (uniform windows)."""
    replay, cfg = run.replay, run.cfg
    length = min(cfg.train.wm_seq_len, len(replay))
    n_valid = replay.num_valid_starts(length) if length >= 1 else 0
    if len(replay) == 0 or n_valid == 0:
        raise DiagnoseError(f"the checkpoint's replay holds {len(replay)} transitions: no "
                            f"window of {length} steps to score the world model on")
    windows = min(windows, n_valid)
    view = _replay_view(replay, derive_seed(seed, _DIAGNOSE, 1), sampling="uniform")
    batch = view.sample_world_model(windows, length)  # uniform, without replacement
    pred_r, real_r, logit, real_t = [], [], [], []
    for i in range(0, windows, chunk):
        obs, act = batch["obs"][i:i + chunk], batch["action"][i:i + chunk]
        z = run.wm.sample(run.wm.encode(obs))  # (b, L, S*K) posterior samples
        d = run.wm.observe(z, act)  # (b, L, D); heads on d_t predict reward_t, termination_t
        pred_r.append(run.wm.reward(d).cpu())
        logit.append(run.wm.termination(d).cpu())
        real_r.append(batch["reward"][i:i + chunk].cpu())
        real_t.append(batch["termination"][i:i + chunk].cpu())
    pr = torch.cat(pred_r).numpy().ravel().astype(np.float64)
    rr = torch.cat(real_r).numpy().ravel().astype(np.float64)
    pt = torch.cat(logit).numpy().ravel() > 0
    rt = torch.cat(real_t).numpy().ravel() > 0.5
    rewarded = np.abs(rr) > REWARD_EPS
    err = np.abs(pr - rr)
    sign_ok = np.sign(pr[rewarded]) == np.sign(rr[rewarded])
    sign_ok &= np.abs(pr[rewarded]) > PRED_REWARD_THRESHOLD * np.abs(rr[rewarded])
    return {
        "windows": int(windows), "window_len": int(length), "steps": int(pr.size),
        "replay_size": len(replay),
        "real_reward_mean": _mean(rr), "pred_reward_mean": _mean(pr),
        "reward_corr": _corr(pr, rr),
        "rewarded_steps": int(rewarded.sum()), "rewarded_frac": _mean(rewarded),
        "pred_rewarded_frac": _mean(np.abs(pr) > PRED_REWARD_THRESHOLD),
        "abs_err_rewarded": _mean(err[rewarded]), "abs_err_unrewarded": _mean(err[~rewarded]),
        "sign_hit_rewarded": _mean(sign_ok),
        "pred_abs_rewarded": _mean(np.abs(pr[rewarded])),
        "pred_abs_unrewarded": _mean(np.abs(pr[~rewarded])),
        "terminal_steps": int(rt.sum()), "pred_terminal_frac": _mean(pt),
        "term_accuracy": _mean(pt == rt),
        "term_recall": _mean(pt[rt]), "term_precision": _mean(rt[pt]),
    }


# ------------------------------------------------------------------------------------ 2. dream
def imagination_report(run: LoadedRun, starts: int, seed: int) -> dict:
    """Imagined rollouts as the actor-critic update sees them (no parameter changes)."""
    cfg, ac, wm = run.cfg.actor_critic, run.ac, run.wm
    n_valid = run.replay.num_valid_starts(cfg.imag_context) \
        if len(run.replay) >= cfg.imag_context else 0
    if n_valid == 0:
        raise DiagnoseError(f"the checkpoint's replay holds {len(run.replay)} transitions: no "
                            f"imagination context of {cfg.imag_context} steps")
    view = _replay_view(run.replay, derive_seed(seed, _DIAGNOSE, 2))  # DFS, copied counters
    feats, acts, rews, conts = [], [], [], []
    done = 0
    while done < starts:
        b = min(cfg.imag_batch, starts - done)
        traj = imagine(wm, ac, view.sample_imagination(b, cfg.imag_context), cfg.imag_horizon)
        feats.append(traj["feat"])
        acts.append(traj["action"])
        rews.append(traj["reward"])
        conts.append(traj["cont"])
        done += b
    feat, action = torch.cat(feats), torch.cat(acts)  # (B, H+1, F), (B, H)
    reward, cont = torch.cat(rews), torch.cat(conts)  # (B, H)
    with torch.no_grad():
        value = ac.value(feat)  # (B, H+1)
        ret = lambda_return(reward, cont, value, cfg.gamma, cfg.lam, cfg.return_form)  # (B, H)
        scale = ac.return_norm.scale()  # S as the checkpoint holds it (not updated here)
        adv = (ret - value[:, :-1]) / scale  # (B, H)
        batch_range = (ac.return_norm.percentile(ret, cfg.return_norm_high)
                       - ac.return_norm.percentile(ret, cfg.return_norm_low))
    # policy on the states acted on (s_0 .. s_{H-1}), with gradients for the two actor terms
    params = [p for p in ac.actor.parameters()]
    logp_all = ac.policy_logits(feat[:, :-1])  # (B, H, A)
    probs = logp_all.exp()
    logp, entropy = ac.policy_terms(logp_all, action)  # (B, H) each, as in ActorCritic.loss
    pg_loss = ac.policy_loss(logp, adv)
    ent_loss = -cfg.entropy_coef * entropy.mean()  # the loss's entropy bonus
    g_pg = torch.autograd.grad(pg_loss, params, retain_graph=True)
    g_ent = torch.autograd.grad(ent_loss, params)
    norm = lambda gs: float(torch.sqrt(sum(g.float().square().sum() for g in gs)))  # noqa: E731
    A = run.num_actions
    probs, entropy = probs.detach(), entropy.detach()
    return {
        "starts": int(feat.shape[0]), "horizon": int(action.shape[1]),
        "states": int(action.numel()), "imag_start": cfg.imag_start,
        "return_form": cfg.return_form,
        "reward_mean": _f(reward.mean()), "reward_abs_mean": _f(reward.abs().mean()),
        "pred_rewarded_frac": _f((reward.abs() > PRED_REWARD_THRESHOLD).float().mean()),
        "cont_mean": _f(cont.mean()),
        "return_mean": _f(ret.mean()), "value_mean": _f(value.mean()),
        "value_s0_mean": _f(value[:, 0].mean()),
        "return_scale": _f(scale), "return_range_batch": _f(batch_range),
        "advantage_abs": _f(adv.abs().mean()),
        "advantage_abs_unscaled": _f((ret - value[:, :-1]).abs().mean()),
        "entropy": _f(entropy.mean()), "entropy_max": math.log(A),
        "entropy_coef": float(cfg.entropy_coef),
        "max_prob_mean": _f(probs.max(-1).values.mean()),
        "prob_sum_max_dev": _f((probs.sum(-1) - 1).abs().max()),
        "grad_norm_policy": norm(g_pg), "grad_norm_entropy": norm(g_ent),
        "greedy_hist": _hist(probs.argmax(-1).cpu(), A),
        "sampled_hist": _hist(action.cpu(), A),
    }


# ------------------------------------------------------------------------------------ 3. reality
@torch.no_grad()
def real_report(run: LoadedRun, episodes: int, max_steps: int, greedy: bool,
                seed: int) -> dict:
    """``episodes`` real episodes with the run's acting rule; sampled or greedy actions."""
    cfg, ac, A = run.cfg, run.ac, run.num_actions
    gamma, lam = cfg.actor_critic.gamma, cfg.actor_critic.lam
    mode = 1 if greedy else 0
    env = run.env_fn(derive_seed(cfg.seed, _DIAGNOSE, seed, mode), evaluation=greedy)
    actor = make_actor(run.wm, ac, 1, run.device)
    exposes = hasattr(actor, "last_feat")  # both actors record the features they act on
    torch.manual_seed(derive_seed(seed, _DIAGNOSE, 3, mode))
    eps, rewards_all, actions_all = [], [], []
    values, disc, matched, entropies, maxp = [], [], [], [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=derive_seed(cfg.seed, _DIAGNOSE, seed, mode, i))
        actor.reset(1)
        rew, term, vals, acts = [], [], [], []
        done = False
        while not done and len(rew) < max_steps:
            if exposes:
                actor.last_feat = None
            a = int(actor.act(obs[None], greedy=greedy)[0])
            feat = actor.last_feat if exposes else None
            if feat is not None:  # None: the random first action of an episode
                vals.append(float(ac.value(feat)[0]))
                logp = ac.policy_logits(feat)[0]
                entropies.append(float(-(logp.exp() * logp).sum()))
                maxp.append(float(logp.exp().max()))
            else:
                vals.append(float("nan"))
            obs, r, terminated, truncated, info = env.step(a)
            rew.append(float(r))
            term.append(is_terminal(terminated, info))
            acts.append(a)
            done = bool(terminated) or bool(truncated)
        eps.append({"return": float(np.sum(rew)), "length": len(rew), "capped": not done})
        rewards_all += rew
        actions_all += acts
        v = np.asarray(vals)
        known = np.isfinite(v)
        values += v[known].tolist()
        disc += discounted_return(rew, gamma)[known].tolist()
        matched += matched_return(rew, term, gamma, lam,
                                  cfg.actor_critic.return_form)[known].tolist()
    env.close()
    values_a, disc_a, matched_a = map(np.asarray, (values, disc, matched))
    return {
        "greedy": bool(greedy), "episodes": eps, "steps": len(rewards_all),
        "max_steps": int(max_steps),
        "return_mean": _mean([e["return"] for e in eps]),
        "reward_mean": _mean(rewards_all),
        "rewarded_frac": _mean(np.abs(np.asarray(rewards_all)) > REWARD_EPS),
        "value_steps": int(values_a.size), "actor_exposes_features": exposes,
        "value_mean": _mean(values_a), "disc_return_mean": _mean(disc_a),
        "matched_return_mean": _mean(matched_a),
        "value_return_corr": _corr(values_a, disc_a),
        "value_abs_err": _mean(np.abs(values_a - matched_a)),
        "entropy": _mean(entropies), "max_prob_mean": _mean(maxp),
        "action_hist": _hist(actions_all, A),
    }


# ------------------------------------------------------------------------------------ driver
def diagnose(run_dir: str | Path, episodes: int = 3, max_steps: int = 2000,
             device: str = "cpu", windows: int = 64, imag_starts: int = 256, seed: int = 0,
             env_fn: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Everything in the module docstring as one JSON-ready dict."""
    for name, v, lo in (("episodes", episodes, 0), ("max_steps", max_steps, 1),
                        ("windows", windows, 1), ("imag_starts", imag_starts, 1)):
        if int(v) < lo:
            raise DiagnoseError(f"{name} must be >= {lo}, got {v}")
    run = load_run(run_dir, device, env_fn)
    torch.manual_seed(derive_seed(seed, _DIAGNOSE, 0))
    c = run.cfg
    loop = run.ck.get("loop") or run.ck  # the loop counters (format 2: LoopState; format 1: top)
    out: dict[str, Any] = {
        "run_dir": str(run_dir), "game": c.game, "variant": c.variant, "preset": c.preset,
        "run_seed": c.seed, "diagnose_seed": seed, "env_step": int(loop["step"]),
        "updates": {"world_model": int(loop.get("wm_updates", 0)),
                    "actor_critic": int(loop.get("ac_updates", 0))},
        "num_actions": run.num_actions, "action_names": run.action_names,
        "settings": {"acting": c.actor_critic.acting, "imag_start": c.actor_critic.imag_start,
                     "return_form": c.actor_critic.return_form, "gamma": c.actor_critic.gamma,
                     "lam": c.actor_critic.lam, "entropy_coef": c.actor_critic.entropy_coef},
    }
    out["world_model"] = world_model_report(run, windows, seed)
    out["imagination"] = imagination_report(run, imag_starts, seed)
    out["real"] = {"sampled": real_report(run, episodes, max_steps, False, seed),
                   "greedy": real_report(run, episodes, max_steps, True, seed)}
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m drama.diagnose",
                                description=__doc__.split("\n")[0])
    p.add_argument("run_dir", help="a drama.train run directory (config.yaml, checkpoint.pt)")
    p.add_argument("--episodes", type=int, default=3,
                   help="real episodes per acting mode (sampled, greedy); default 3")
    p.add_argument("--max-steps", type=int, default=2000,
                   help="cap on each real episode's length (default 2000)")
    p.add_argument("--windows", type=int, default=64,
                   help="replayed windows for the world-model check (default 64)")
    p.add_argument("--imag-starts", type=int, default=256,
                   help="imagination start states (default 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of the diagnosis' randomness")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the report as JSON")
    return p


def main(argv: list[str] | None = None, env_fn: Callable[..., Any] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = diagnose(args.run_dir, args.episodes, args.max_steps, args.device,
                          args.windows, args.imag_starts, args.seed, env_fn)
    except (DiagnoseError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_report(report), flush=True)
    if args.json:
        from drama.run_io import atomic_write_json

        atomic_write_json(Path(args.json), report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
