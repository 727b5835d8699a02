"""Open-loop predictions of a run's world model, as a PNG strip and an animated GIF.

    python -m drama.openloop RUN_DIR --out PREFIX [--context C] [--horizon H] \
        [--source auto|replay|env] [--skip 100] [--seed 0] [--scale 2] [--device cpu]

writes ``PREFIX.png`` and ``PREFIX.gif``. A stretch of C + H real frames with the actions taken
and the rewards and terminations that followed: the world model observes the first C frames
(posterior samples of their latents, the real actions through the sequence model's recurrent
``step``), then imagines H steps under the real actions alone: z_t ~ prior(d_{t-1}),
d_t = step(z_t, a_t), never seeing another frame. Time alignment as in drama/world_model.py:
frame o_t is seen before a_t; the reward and termination heads on d_t predict reward_t and
termination_t, the consequences of a_t.

Strip (one column per step t, upscaled ``--scale`` times): rows *real* o_t, *reconstruction*
(decoded posterior sample of o_t), *open loop* (context columns: the reconstruction, marked by a
green bar; imagined columns: the decoded prior sample, marked red); under each column the
predicted and real reward of a_t and the predicted continuation probability
(sigmoid(-termination logit)) against the real one (0 at a game over or life loss). The GIF shows
the same three frames side by side, one GIF frame per step.

Frames come from the run's replay when the checkpoint holds it (a window inside one episode,
drawn with ``--seed``), else (a finished run without its replay) from the run's environment,
played with the run's acting rule and sampled actions for ``--skip`` + C + H steps of an
episode; the last C + H are shown. C and H default to the run's ``actor_critic.imag_context``
and ``imag_horizon``: the lengths the actor-critic learns from. ``drama.train`` writes the same
at each evaluation with ``train.openloop`` (from the replay; ``openloop/step<N>.png|gif`` in the
run directory, and to TensorBoard with ``train.tensorboard``). Randomness comes from its own
seeded generator state, so nothing else (training included) sees a different random stream.
Nothing in RUN_DIR is changed. Exit codes: 0 done, 2 a user error (one line).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import sys
from pathlib import Path

import numpy as np
import torch

from drama.evaluate import derive_seed, make_actor
from drama.run import SeedStream, is_terminal
from drama.run_io import atomic_write_bytes

_OPENLOOP = SeedStream.OPENLOOP
CONTEXT_RGB, IMAGINED_RGB = (40, 170, 60), (200, 50, 50)
GIF_MS = 250  # per GIF frame


@dataclasses.dataclass
class OpenLoop:
    """Real, reconstructed and predicted frames of C + H steps, and the head predictions."""

    real: np.ndarray  # (T, 64, 64, 3) uint8
    recon: np.ndarray  # (T, 64, 64, 3) uint8, decoded posterior samples
    pred: np.ndarray  # (T, 64, 64, 3) uint8, recon for t < C, open-loop prediction after
    actions: np.ndarray  # (T,) int64
    reward_real: np.ndarray  # (T,) reward_t, the consequence of a_t
    reward_pred: np.ndarray  # (T,) reward head on d_t
    cont_real: np.ndarray  # (T,) 1 - termination_t
    cont_pred: np.ndarray  # (T,) sigmoid(-termination logit on d_t)
    context: int

    @property
    def steps(self) -> int:
        return len(self.real)


def _u8(x: torch.Tensor) -> np.ndarray:
    return (x.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


@torch.no_grad()
def open_loop(wm, obs, actions, rewards, terminations, context: int, seed: int) -> OpenLoop:
    """Observe ``context`` real frames, then imagine the rest under the given ``actions``.

    ``obs`` (T, 64, 64, 3) uint8, ``actions`` (T,) ints, ``rewards`` / ``terminations`` (T,);
    T - context >= 1 imagined steps. The random draws (posterior samples of all T frames first,
    then one prior sample per imagined step) come from a torch RNG forked and seeded with
    ``seed``, so the same inputs give the same result and the caller's RNG is untouched; the
    context columns never depend on the actions after the context.
    """
    obs = np.asarray(obs)
    T = len(obs)
    if not 1 <= context < T:
        raise ValueError(f"open loop: need 1 <= context < frames, got context {context} of {T} "
                         f"frames")
    if not (len(actions) == len(rewards) == len(terminations) == T):
        raise ValueError(f"open loop: {T} frames but {len(actions)} actions, {len(rewards)} "
                         f"rewards, {len(terminations)} terminations")
    dev = wm.device
    was_training = wm.training
    wm.eval()
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(int(seed))
        o = torch.as_tensor(obs, device=dev)
        a = torch.as_tensor(np.asarray(actions), dtype=torch.long, device=dev)
        z_post = wm.sample(wm.encode(o))  # (T, S*K): every frame's posterior sample
        recon = wm.decode(z_post)  # (T, 64, 64, 3) in [0, 1]
        state = wm.init_state(1)
        ds = []
        for t in range(context):  # observe: posterior latents, real actions
            d, state = wm.step(z_post[t:t + 1], a[t:t + 1], state)
            ds.append(d)
        preds = [recon[:context]]
        for t in range(context, T):  # imagine: prior latents, real actions, no frames
            z = wm.sample(wm.prior_logits(d))  # z_t ~ prior(d_{t-1})
            preds.append(wm.decode(z))
            d, state = wm.step(z, a[t:t + 1], state)
            ds.append(d)
        d_all = torch.cat(ds)  # (T, D)
        reward_pred = wm.reward(d_all).float().cpu().numpy()
        cont_pred = torch.sigmoid(-wm.termination(d_all)).cpu().numpy()
    wm.train(was_training)
    term = np.asarray(terminations, dtype=np.float64)
    return OpenLoop(real=obs.astype(np.uint8), recon=_u8(recon), pred=_u8(torch.cat(preds)),
                    actions=np.asarray(actions, dtype=np.int64),
                    reward_real=np.asarray(rewards, dtype=np.float64),
                    reward_pred=reward_pred.astype(np.float64), cont_real=1.0 - term,
                    cont_pred=cont_pred.astype(np.float64), context=int(context))


def openloop_from_replay(wm, replay, context: int, horizon: int, seed: int) -> OpenLoop:
    """Open loop on a window of ``replay`` drawn with ``seed`` (inside one episode when any
    such window exists); the replay's counters and generator are not touched."""
    T = context + horizon
    n = len(replay)
    if n < T:
        raise ValueError(f"open loop: the replay holds {n} transitions, fewer than context + "
                         f"horizon = {T}")
    ok = replay.window_starts(T).cpu().numpy()
    starts = np.flatnonzero(ok) if ok.any() else np.arange(n - T + 1)
    start = int(np.random.default_rng(derive_seed(seed, _OPENLOOP, 0)).choice(starts))
    w = replay.gather(torch.tensor([start], device=replay.device), T)
    return open_loop(wm, w["obs"][0].cpu().numpy(), w["action"][0].cpu().numpy(),
                     w["reward"][0].cpu().numpy(), w["termination"][0].cpu().numpy(),
                     context, derive_seed(seed, _OPENLOOP, 1))


def openloop_at_step(wm, replay, cfg, step: int, out: Path):
    """The trainer's ``train.openloop``: the open loop on a replay window (seed stream
    OPENLOOP of the run seed and ``step``) written under ``out/openloop/step<step>``; returns
    the strip, or None (with a line saying so) while the replay is shorter than one window."""
    context, horizon = cfg.actor_critic.imag_context, cfg.actor_critic.imag_horizon
    if len(replay) < context + horizon:
        print(f"open loop at step {step} skipped: the replay holds {len(replay)} "
              f"transitions, fewer than {context + horizon}", flush=True)
        return None
    result = openloop_from_replay(wm, replay, context, horizon,
                                  seed=derive_seed(cfg.seed, SeedStream.OPENLOOP, step))
    return write_openloop(result, out / "openloop" / f"step{step:07d}",
                          title=f"{cfg.game} {cfg.variant} seed {cfg.seed}, step {step}")


def openloop_from_env(run, context: int, horizon: int, seed: int, skip: int) -> OpenLoop:
    """Open loop on frames of a fresh episode of the run's environment, played by the run's
    acting rule with sampled actions (``run``: drama.run.LoadedRun)."""
    T = context + horizon
    cfg = run.cfg
    # the training protocol: the one the world model learned (the evaluation env may differ,
    # train.eval_env)
    env = run.env_fn(derive_seed(cfg.seed, _OPENLOOP, seed), evaluation=False)
    actor = make_actor(run.wm, run.ac, 1, run.device)
    frames, acts, rews, terms = [], [], [], []
    dev = run.device
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(derive_seed(seed, _OPENLOOP, 2))
        obs, _ = env.reset(seed=derive_seed(cfg.seed, _OPENLOOP, seed, 1))
        for _ in range(skip + T):
            a = int(actor.act(obs[None])[0])
            nxt, r, term, trunc, info = env.step(a)
            frames.append(obs)
            acts.append(a)
            rews.append(float(r))
            terms.append(is_terminal(term, info))
            obs = nxt
            if term or trunc:
                break
    env.close()
    if len(frames) < T:
        raise ValueError(f"open loop: the episode ended after {len(frames)} steps, fewer than "
                         f"context + horizon = {T}; choose a smaller --context/--horizon")
    sl = slice(len(frames) - T, len(frames))
    return open_loop(run.wm, np.stack(frames[sl]), acts[sl], rews[sl], terms[sl], context,
                     derive_seed(seed, _OPENLOOP, 3))


# ------------------------------------------------------------------------------- pictures
def _font(scale: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=6 + 3 * scale)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def _up(frame: np.ndarray, scale: int) -> np.ndarray:
    return np.repeat(np.repeat(frame, scale, 0), scale, 1)


def strip_layout(steps: int, scale: int) -> dict[str, int]:
    """Pixel geometry of the strip: column width, label width, header, row and footer
    heights, and the image's width and height."""
    side, gap = 64 * scale, 2
    g = {"side": side, "gap": gap, "label": 50 + 30 * scale, "header": 12 + 6 * scale,
         "bar": 4, "footer": 2 * (8 + 5 * scale)}
    g["col"] = side + gap
    g["width"] = g["label"] + steps * g["col"]
    g["height"] = g["header"] + g["bar"] + 3 * (side + gap) + g["footer"]
    return g


def render_strip(ol: OpenLoop, scale: int = 2, title: str = "") -> np.ndarray:
    """The strip as an RGB uint8 array (see the module docstring); geometry: strip_layout."""
    from PIL import Image, ImageDraw

    g = strip_layout(ol.steps, scale)
    img = Image.new("RGB", (g["width"], g["height"]), (255, 255, 255))
    draw, font = ImageDraw.Draw(img), _font(scale)
    draw.text((4, 2), f"{title}  context {ol.context}, open loop {ol.steps - ol.context} "
                      f"(real actions)".strip(), fill=(0, 0, 0), font=font)
    top = g["header"] + g["bar"]
    rows = (("real", ol.real), ("recon", ol.recon), ("open loop", ol.pred))
    for r, (name, frames) in enumerate(rows):
        y = top + r * (g["side"] + g["gap"])
        draw.text((4, y + g["side"] // 2 - 6), name, fill=(0, 0, 0), font=font)
        for t in range(ol.steps):
            img.paste(Image.fromarray(_up(frames[t], scale)), (g["label"] + t * g["col"], y))
    fy = top + 3 * (g["side"] + g["gap"])
    line = g["footer"] // 2
    draw.text((4, fy), "r pred/real", fill=(0, 0, 0), font=font)
    draw.text((4, fy + line), "cont pred/real", fill=(0, 0, 0), font=font)
    for t in range(ol.steps):
        x = g["label"] + t * g["col"]
        colour = CONTEXT_RGB if t < ol.context else IMAGINED_RGB
        draw.rectangle([x, g["header"], x + g["side"] - 1, g["header"] + g["bar"] - 1],
                       fill=colour)
        draw.text((x + 2, fy), f"{ol.reward_pred[t]:+.2f}/{ol.reward_real[t]:g}",
                  fill=(0, 0, 0), font=font)
        draw.text((x + 2, fy + line), f"{ol.cont_pred[t]:.2f}/{ol.cont_real[t]:g}",
                  fill=colour if ol.cont_real[t] < 0.5 else (0, 0, 0), font=font)
    return np.asarray(img)


def render_gif_frames(ol: OpenLoop, scale: int = 2, title: str = "") -> list[np.ndarray]:
    """One RGB frame per step: real | reconstruction | open loop, with the step's numbers."""
    from PIL import Image, ImageDraw

    side, gap, font = 64 * scale, 4, _font(scale)
    head, foot = 12 + 6 * scale, 12 + 6 * scale
    out = []
    for t in range(ol.steps):
        img = Image.new("RGB", (3 * side + 2 * gap, head + side + foot), (255, 255, 255))
        draw = ImageDraw.Draw(img)
        imagined = t >= ol.context
        for k, (name, frames) in enumerate((("real", ol.real), ("recon", ol.recon),
                                            ("open loop" if imagined else "context",
                                             ol.pred))):
            x = k * (side + gap)
            draw.text((x + 2, 2), name, fill=IMAGINED_RGB if k == 2 and imagined else
                      (CONTEXT_RGB if k == 2 else (0, 0, 0)), font=font)
            img.paste(Image.fromarray(_up(frames[t], scale)), (x, head))
        draw.text((2, head + side + 2),
                  f"{title} | t={t}  r {ol.reward_pred[t]:+.2f}/{ol.reward_real[t]:g}  "
                  f"cont {ol.cont_pred[t]:.2f}/{ol.cont_real[t]:g}".strip(),
                  fill=(0, 0, 0), font=font)
        out.append(np.asarray(img))
    return out


def write_openloop(ol: OpenLoop, prefix: str | Path, title: str = "",
                   scale: int = 2) -> np.ndarray:
    """Write ``prefix``.png (the strip) and ``prefix``.gif atomically; returns the strip."""
    from PIL import Image

    prefix = Path(prefix)
    strip = render_strip(ol, scale, title)
    buf = io.BytesIO()
    Image.fromarray(strip).save(buf, format="PNG")
    atomic_write_bytes(prefix.with_name(prefix.name + ".png"), buf.getvalue())
    frames = [Image.fromarray(f) for f in render_gif_frames(ol, scale, title)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:],
                   duration=GIF_MS, loop=0)
    atomic_write_bytes(prefix.with_name(prefix.name + ".gif"), buf.getvalue())
    return strip


# ------------------------------------------------------------------------------------ command
def openloop_run(run_dir: str | Path, context: int | None = None, horizon: int | None = None,
                 source: str = "auto", skip: int = 100, seed: int = 0,
                 device: str = "cpu") -> tuple[OpenLoop, str]:
    """Open loop of ``run_dir``'s checkpoint; returns it and where its frames came from."""
    from drama.run import RunDirError, load_run

    if source not in ("auto", "replay", "env"):
        raise ValueError(f"--source must be auto, replay or env, got {source!r}")
    if skip < 0:
        raise ValueError(f"--skip must be >= 0, got {skip}")
    try:
        run = load_run(run_dir, device, need_replay=source == "replay")
    except RunDirError as e:
        raise ValueError(str(e)) from None
    ac = run.cfg.actor_critic
    context = ac.imag_context if context is None else int(context)
    horizon = ac.imag_horizon if horizon is None else int(horizon)
    if context < 1 or horizon < 1:
        raise ValueError(f"--context and --horizon must be >= 1, got {context}, {horizon}")
    if source == "replay" or (source == "auto" and len(run.replay) > 0):
        return openloop_from_replay(run.wm, run.replay, context, horizon, seed), "replay"
    return openloop_from_env(run, context, horizon, seed, skip), "env"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m drama.openloop",
                                description=__doc__.split("\n")[0])
    p.add_argument("run_dir", help="a drama.train run directory (config.yaml, checkpoint.pt)")
    p.add_argument("--out", required=True, help="PREFIX: writes PREFIX.png and PREFIX.gif")
    p.add_argument("--context", type=int, default=None,
                   help="real context frames (default: the run's actor_critic.imag_context)")
    p.add_argument("--horizon", type=int, default=None,
                   help="imagined steps (default: the run's actor_critic.imag_horizon)")
    p.add_argument("--source", default="auto",
                   help="auto (replay if the checkpoint holds it, else env) | replay | env")
    p.add_argument("--skip", type=int, default=100,
                   help="env source: steps played before the window (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=int, default=2, help="pixel upscaling (default 2)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    args = p.parse_args(argv)
    try:
        if args.scale < 1:
            raise ValueError(f"--scale must be >= 1, got {args.scale}")
        ol, source = openloop_run(args.run_dir, args.context, args.horizon, args.source,
                                  args.skip, args.seed, args.device)
        import yaml

        with open(Path(args.run_dir) / "config.yaml") as f:
            c = yaml.safe_load(f)
        write_openloop(ol, args.out, f"{c['game']} {c['variant']} seed {c['seed']}", args.scale)
    except (ValueError, OSError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    err = lambda x: ((x.astype(np.float64) - ol.real) / 255).__pow__(2).mean(axis=(1, 2, 3))  # noqa: E731
    C = ol.context
    print(f"{args.out}.png, {args.out}.gif: {C} context + {ol.steps - C} open-loop steps from "
          f"the {source}; mean squared pixel error (0-1 scale): reconstruction "
          f"{err(ol.recon).mean():.4f}, open loop {err(ol.pred)[C:].mean():.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
