"""Record reference numbers from the official Drama release for tests/test_official_parity.py.

    python scripts/official_reference/generate.py --release PATH [--out tests/data/official]

PATH is a checkout of the ICLR release (commit 65b2aac of SSubhnil/DramaUpdate). It is
imported on the CPU in fp32 with the stand-ins of ``release_shim.py`` (checked against the
release's own recurrence in float64 first). Weights, inputs and noise come from
``tests/official_parity.py``, which the tests use on our side, so nothing but small summaries
is written. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import official_parity as op  # noqa: E402
import release_shim  # noqa: E402

# The release's configure.yaml with what a CPU comparison changes: fp32, no CUDA graphs, no
# compile; a 10-update warm-up (the release: 1,000) so that 20 updates move the weights by more
# than fp32 rounding. Our side uses the same warm-up (tests/test_official_parity.py).
WARMUP = 10
STREAM = 2400  # real transitions the inputs are cut from
SPEC = {
    "wm_update": {"batch": 16, "length": 128, "tape": 1, "starts_seed": 11},
    "wm_trajectory": {"batch": 4, "length": 32, "updates": 20, "tape": 2, "starts_seed": 12},
    "imagination": {"batch": 1024, "context": 8, "horizon": 16, "tape": 3, "starts_seed": 13},
    "ac_trajectory": {"batch": 128, "context": 8, "horizon": 16, "updates": 20, "tape": 4,
                      "starts_seed": 14},
    "dfs": {"length": 3000, "wm_len": 128, "img_len": 8, "count_seed": 15},
}


class DotDict(dict):
    def __getattr__(self, key):
        value = self[key]
        return DotDict(value) if isinstance(value, dict) else value


def release_config(path: str) -> DotDict:
    cfg = yaml.safe_load(open(os.path.join(path, "config_files", "configure.yaml")))
    cfg["BasicSettings"].update(Use_amp=False, Use_cg=False, Compile=False, Device="cpu",
                                ReplayBufferOnGPU=True)
    cfg["Models"]["WorldModel"]["dtype"] = torch.float32
    cfg["Models"]["Agent"]["dtype"] = torch.float32
    cfg["Models"]["WorldModel"]["Warmup_steps"] = WARMUP
    cfg["Models"]["Agent"]["AC"]["Warmup_steps"] = WARMUP
    return DotDict(cfg)


class Official:
    """The release's world model and agent with derived weights, and the noise patches."""

    def __init__(self, mods, cfg):
        self.mods, self.cfg = mods, cfg
        self.wm = mods["world_models"].WorldModel(op.NUM_ACTIONS, cfg, "cpu")
        self.agent = mods["agents"].ActorCriticAgent(cfg, op.NUM_ACTIONS, "cpu")
        op.set_derived(self.wm, None)
        op.set_derived(self.agent, None)
        rms = self.agent.actor[0].ob_rms
        rms.mean, rms.var, rms.count = op.actor_input_stats(rms.mean.shape[0])

    @contextlib.contextmanager
    def inject(self, tape: op.NoiseTape):
        wm_cls = self.mods["world_models"].WorldModel
        ag_cls = self.mods["agents"].ActorCriticAgent
        dist = torch.distributions

        calls = {"imagine": None}

        def stright_throught_gradient(self_, logits, sample_mode="random_sample"):
            d = dist.OneHotCategorical(logits=logits)
            assert sample_mode == "random_sample", sample_mode
            if calls["imagine"] is not None:
                calls["imagine"] += 1
            if calls["imagine"] == 2 and logits.shape[1] > 1:
                # imagine_data2 samples the prior of every context step but uses only the
                # last one (s_0): only that draw comes from the tape (ours samples just it)
                u = torch.rand(d.logits.shape, generator=torch.Generator().manual_seed(0))
                u[:, -1:] = tape.uniform((logits.shape[0], 1, *logits.shape[2:]))
            else:
                u = tape.uniform(d.logits.shape)
            idx = op.gumbel_argmax(d.logits, u)
            sample = F.one_hot(idx, d.logits.shape[-1]).to(d.probs.dtype)
            return sample + d.probs - d.probs.detach()  # the release's formula

        @torch.no_grad()
        def sample(self_, latent, greedy=False):
            self_.eval()
            logits = self_.policy(latent)
            d = dist.Categorical(logits=logits)
            action = op.gumbel_argmax(d.logits, tape.uniform(d.logits.shape))
            return action, logits

        imagine_data2 = wm_cls.imagine_data2

        def counted_imagine(self_, *a, **kw):
            calls["imagine"] = 0
            try:
                return imagine_data2(self_, *a, **kw)
            finally:
                calls["imagine"] = None

        saved = (wm_cls.stright_throught_gradient, ag_cls.sample, F.dropout)
        wm_cls.stright_throught_gradient = stright_throught_gradient
        ag_cls.sample = sample
        wm_cls.imagine_data2 = counted_imagine
        F.dropout = op.tape_dropout(tape, saved[2])
        try:
            yield
        finally:
            wm_cls.stright_throught_gradient, ag_cls.sample, F.dropout = saved
            wm_cls.imagine_data2 = imagine_data2


def wm_batch(win: dict[str, torch.Tensor]):
    """A replay batch as the release's ReplayBuffer.sample returns it."""
    obs = win["obs"].float() / 255
    obs = obs.permute(0, 1, 4, 2, 3).contiguous()  # B T H W C -> B T C H W
    return obs, win["action"].float(), win["reward"].float(), win["termination"].float()


def params(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def wm_update(off: Official, stream, spec) -> dict:
    win = op.windows(stream, op.window_starts(spec["starts_seed"], spec["batch"], spec["length"],
                                              STREAM), spec["length"])
    wm = off.wm
    outs, clips = {}, []
    modules = {"encoder": wm.encoder, "post_logits": wm.dist_head.post_head,
               "decoder": wm.image_decoder, "sequence": wm.sequence_model,
               "prior_logits": wm.dist_head.prior_head, "reward_logits": wm.reward_decoder,
               "termination_logit": wm.termination_decoder}
    before = params(wm)
    with off.inject(op.NoiseTape(spec["tape"])), op.record_outputs(modules, outs), \
            op.record_clip(list(wm.named_parameters()), op.WM_GROUPS, clips):
        losses = wm.update(*wm_batch(win), global_step=1, epoch_step=0, logger=None)
    names = ["rec", "rew", "term", "dyn", "kl_dyn", "rep", "kl_rep", "total"]
    return {"losses": dict(zip(names, losses, strict=True)), "outputs": outs,
            "grad_norms": clips[0], "running_stats": op.running_stats(wm),
            "param_change": op.param_change(before, params(wm))}


def wm_trajectory(off: Official, stream, spec) -> dict:
    wm, clips, losses = off.wm, [], []
    before = params(wm)
    with off.inject(op.NoiseTape(spec["tape"])), \
            op.record_clip(list(wm.named_parameters()), op.WM_GROUPS, clips):
        for k in range(spec["updates"]):
            starts = op.window_starts(spec["starts_seed"] * 1000 + k, spec["batch"],
                                      spec["length"], STREAM)
            win = op.windows(stream, starts, spec["length"])
            losses.append(wm.update(*wm_batch(win), global_step=1, epoch_step=0, logger=None))
    return {"losses": torch.tensor(losses, dtype=torch.float64),
            "grad_total": torch.tensor([c["total"] for c in clips], dtype=torch.float64),
            "grad_groups": torch.tensor([[c["group:" + g] for g in op.WM_GROUPS] for c in clips],
                                        dtype=torch.float64),
            "running_stats": op.running_stats(wm),
            "param_change": op.param_change(before, params(wm))}


def imagine(off: Official, stream, batch, context, horizon, starts_seed):
    win = op.windows(stream, op.window_starts(starts_seed, batch, context, STREAM), context)
    obs, action, _, _ = wm_batch(win)
    off.wm.eval()
    off.agent.eval()
    with torch.no_grad():
        latent, act, old_logits, ctx, rew, term = off.wm.imagine_data2(
            off.agent, obs, action, imagine_batch_size=batch, imagine_batch_length=horizon,
            log_video=False, logger=None, global_step=0)
    return latent.clone(), act.clone(), rew.clone(), term.clone()


class Logger:
    def __init__(self):
        self.values = {}

    def log(self, key, value, global_step=None):
        self.values[key.split("/")[-1]] = float(value)


@contextlib.contextmanager
def record_lambda_returns(agents_mod, sink: list):
    original = agents_mod.calc_lambda_return

    def calc(*a, **kw):
        out = original(*a, **kw)
        sink.append(op.summary(out))
        return out

    agents_mod.calc_lambda_return = calc
    try:
        yield
    finally:
        agents_mod.calc_lambda_return = original


def ac_update(off: Official, latent, act, rew, term) -> dict:
    ag, log, clips, rets = off.agent, Logger(), [], []
    if ag.lowerbound_ema.scalar == 0.0 and ag.upperbound_ema.scalar == 0.0:
        # return-scale EMAs preset (both sides) so that S > 1 and the advantages are divided
        ag.lowerbound_ema.scalar, ag.upperbound_ema.scalar = op.RETURN_EMAS
    rms = ag.actor[0].ob_rms
    stats = {"mean": rms.mean.clone(), "var": rms.var.clone(), "count": rms.count.clone()}
    before = params(ag)
    with op.record_clip(list(ag.named_parameters()), None, clips), \
            record_lambda_returns(off.mods["agents"], rets):
        ag.update(latent, act, None, None, None, None, rew, term, logger=log, global_step=0)
    return {"losses": log.values, "grad_total": clips[0]["total"],
            "grad_norms": clips[0], "lambda_return_slow": rets[0], "lambda_return": rets[1],
            "input_stats_before": stats,
            "param_change": op.param_change(before, params(ag))}


def dfs(mods, cfg, spec) -> dict:
    buf = mods["replay_buffer"].ReplayBuffer(cfg, device="cpu")
    n = spec["length"]
    rng = np.random.default_rng(spec["count_seed"])
    wm_count = torch.from_numpy(rng.integers(0, 40, n)).int()
    img_count = torch.from_numpy(rng.integers(0, 2000, n)).int()
    buf.length = n
    buf.sampled_counter[:n] = wm_count
    buf.imagined_counter[:n] = img_count
    seen = []
    original = torch.multinomial

    def multinomial(p, *a, **kw):
        seen.append(p.detach().double().clone())
        return original(p, *a, **kw)

    torch.multinomial = multinomial
    try:
        buf.sample(16, spec["wm_len"], imagine=False)
        buf.sampled_counter[:n] = wm_count  # undo the draw's count update
        buf.sample(1024, spec["img_len"], imagine=True)
    finally:
        torch.multinomial = original
    return {"wm_count": wm_count, "img_count": img_count, "p_world_model": seen[0],
            "p_imagination": seen[1]}


ENV_GAMES, ENV_STEPS, ENV_ACTION_SEED = ("Krull", "Breakout"), 1500, 21


def env_steps(release: str) -> dict:
    """The release's training env (envs/my_atari.py) under seeded random actions: per step the
    frame digest, reward, is_terminal (life loss or game over) and is_last (episode end)."""
    sys.path.insert(0, release)
    from envs.my_atari import Atari

    out = {}
    for game in ENV_GAMES:
        env = Atari(f"ALE/{game}-v5", size=(64, 64), seed=3710)
        rng = np.random.default_rng(ENV_ACTION_SEED)
        env.reset()
        rows = {"action": [], "digest": [], "reward": [], "is_terminal": [], "is_last": []}
        for _ in range(ENV_STEPS):
            a = int(rng.integers(env.action_space.n))
            obs, reward, is_last, info = env.step(a)
            rows["action"].append(a)
            rows["digest"].append(op.frames_digest(obs)[:16])
            rows["reward"].append(float(reward))
            rows["is_terminal"].append(bool(info["is_terminal"]))
            rows["is_last"].append(bool(is_last))
            if is_last:
                env.reset()
        env.close()
        out[game] = {"action": torch.tensor(rows["action"]),
                     "digest": rows["digest"],
                     "reward": torch.tensor(rows["reward"], dtype=torch.float64),
                     "is_terminal": torch.tensor(rows["is_terminal"]),
                     "is_last": torch.tensor(rows["is_last"])}
    return out


def eval_env_steps(release: str) -> dict:
    """The release's evaluation env (eval.py build_single_env: gymnasium ALE v5, its
    MaxLast2FrameSkipWrapper, ResizeObservation 64) under seeded random actions: per step the
    frame digest, reward and episode end (game over or the 108,000-frame cap)."""
    sys.path.insert(0, release)
    import eval as release_eval

    out = {}
    for game in ENV_GAMES:
        # (64, 64): the release passes 64, which the gymnasium of its time took as (64, 64)
        env = release_eval.build_single_env(f"ALE/{game}-v5", (64, 64))
        rng = np.random.default_rng(ENV_ACTION_SEED)
        env.reset()
        rows = {"action": [], "digest": [], "reward": [], "is_last": []}
        for _ in range(ENV_STEPS):
            a = int(rng.integers(env.action_space.n))
            obs, reward, done, truncated, info = env.step(a)
            rows["action"].append(a)
            rows["digest"].append(op.frames_digest(obs)[:16])
            rows["reward"].append(float(reward))
            rows["is_last"].append(bool(done or truncated))
            if done or truncated:
                env.reset()
        env.close()
        out[game] = {"action": torch.tensor(rows["action"]), "digest": rows["digest"],
                     "reward": torch.tensor(rows["reward"], dtype=torch.float64),
                     "is_last": torch.tensor(rows["is_last"])}
    return out


PARTS = ("wm_update", "wm_trajectory", "imagination", "ac_trajectory", "dfs", "env", "eval_env")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--release", required=True, help="checkout of the release at 65b2aac")
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / "official"))
    ap.add_argument("--threads", type=int, default=op.THREADS,
                    help="CPU threads (the tests run with the same: tests/official_parity.py)")
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                    help="record only these parts, keeping the others of an existing file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    mods = release_shim.import_release(os.path.abspath(args.release))
    err = release_shim.check_against_recurrence(mods)
    print(f"stand-in vs the release's own Mamba2.step, float64: max |diff| = {err:.2e}")
    if err > 1e-12:
        raise SystemExit("the CPU stand-in does not match the release's recurrence; stopping")
    cfg = release_config(args.release)
    stream = op.real_stream(STREAM)
    out = Path(args.out)
    ref: dict = {}
    if set(args.parts) != set(PARTS):
        ref = torch.load(out / "reference.pt", weights_only=True)
    ref.update({"spec": SPEC, "stream": STREAM, "warmup": WARMUP,
                "frames_sha256": op.frames_digest(stream["obs"])})
    if "wm_update" in args.parts:
        ref["wm_update"] = wm_update(Official(mods, cfg), stream, SPEC["wm_update"])
        print(f"[{time.time() - t0:.0f}s] wm_update: {ref['wm_update']['losses']}")
    if "wm_trajectory" in args.parts:
        ref["wm_trajectory"] = wm_trajectory(Official(mods, cfg), stream, SPEC["wm_trajectory"])
        print(f"[{time.time() - t0:.0f}s] wm_trajectory: total loss "
              f"{ref['wm_trajectory']['losses'][:, -1].tolist()}")
    if "imagination" in args.parts:
        imagination_part(mods, cfg, stream, ref, t0)
    if "ac_trajectory" in args.parts:
        ac_trajectory_part(mods, cfg, stream, ref, t0)
    if "dfs" in args.parts:
        ref["dfs"] = dfs(mods, cfg, SPEC["dfs"])
    if "env" in args.parts:
        ref["env"] = env_steps(os.path.abspath(args.release))
        print(f"[{time.time() - t0:.0f}s] env: "
              + ", ".join(f"{g} {int(v['is_terminal'].sum())} terminal flags"
                          for g, v in ref["env"].items()))
    if "eval_env" in args.parts:
        ref["eval_env"] = eval_env_steps(os.path.abspath(args.release))
        print(f"[{time.time() - t0:.0f}s] eval_env: "
              + ", ".join(f"{g} {int(v['is_last'].sum())} episode ends"
                          for g, v in ref["eval_env"].items()))
    versions = {name: importlib.metadata.version(name) for name in
                ("torch", "gymnasium", "ale-py", "opencv-python-headless", "numpy", "einops",
                 "pytorch-warmup")}
    stamp = {"date": datetime.date.today().isoformat(), "versions": versions,
             "stand_in_error_float64": err, "seconds": round(time.time() - t0, 1)}
    parts = dict(ref.get("provenance", {}).get("parts", {}))
    parts.update({part: stamp for part in args.parts})  # each part: when and with what
    ref["provenance"] = {
        "release": op.RELEASE, "command": "python scripts/official_reference/generate.py "
        "--release PATH [--parts ...]", "torch": str(torch.__version__),
        "stand_in_error_float64": err, "parts": parts,
    }
    out.mkdir(parents=True, exist_ok=True)
    torch.save(ref, out / "reference.pt")
    (out / "provenance.json").write_text(json.dumps({**ref["provenance"], "spec": SPEC,
                                                     "warmup": WARMUP}, indent=2) + "\n")
    size = (out / "reference.pt").stat().st_size
    print(f"wrote {out / 'reference.pt'} ({size / 1e6:.2f} MB) in {time.time() - t0:.0f} s")


def imagination_part(mods, cfg, stream, ref, t0) -> None:
    s = SPEC["imagination"]
    off = Official(mods, cfg)
    with off.inject(op.NoiseTape(s["tape"])):
        latent, act, rew, term = imagine(off, stream, s["batch"], s["context"], s["horizon"],
                                         s["starts_seed"])
        rms = off.agent.actor[0].ob_rms
        img = {"action": act.to(torch.int8), "reward": rew.float(),
               "termination": term.bool(), "latent": op.summary(latent[..., :1024]),
               "latent_index_sums": latent[..., :1024].reshape(s["batch"], s["horizon"] + 1, 32,
                                                              32).argmax(-1).sum((0, 2)),
               "latent_checksum": op.latent_checksum(latent[..., :1024]),
               "feat_h": op.summary(latent[..., 1024:]),
               "input_mean_after": op.summary(rms.mean), "input_var_after": op.summary(rms.var)}
        img["ac_update"] = ac_update(off, latent, act, rew, term)
    ref["imagination"] = img
    print(f"[{time.time() - t0:.0f}s] imagination + ac_update: {img['ac_update']['losses']}")


def ac_trajectory_part(mods, cfg, stream, ref, t0) -> None:
    s = SPEC["ac_trajectory"]
    off = Official(mods, cfg)
    traj = []
    before = params(off.agent)
    with off.inject(op.NoiseTape(s["tape"])):
        for k in range(s["updates"]):
            latent, act, rew, term = imagine(off, stream, s["batch"], s["context"], s["horizon"],
                                             s["starts_seed"] * 1000 + k)
            u = ac_update(off, latent, act, rew, term)
            traj.append([u["losses"][k] for k in ("policy_loss", "value_loss", "entropy_loss",
                                                  "S", "total_loss")] + [u["grad_total"]])
    ref["ac_trajectory"] = {"values": torch.tensor(traj, dtype=torch.float64),
                            "param_change": op.param_change(before, params(off.agent))}
    print(f"[{time.time() - t0:.0f}s] ac_trajectory: total loss "
          f"{[round(v[4], 5) for v in traj]}")



if __name__ == "__main__":
    main()
