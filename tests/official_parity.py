"""What the official-release parity tests and their generator share (not a test module).

Both sides of a comparison (``scripts/official_reference/generate.py`` on the official ICLR
release, ``tests/test_official_parity.py`` on ours) take from here:

* **weights**: every parameter and buffer is derived from a seed and its *official* state-dict
  name (``derived_tensor``); ours are named through ``official_name`` (the name map below), so
  the two models hold identical numbers without any weight file;
* **inputs**: real Krull frames from ``drama.envs`` under a fixed action sequence
  (``real_stream``), cut into windows at fixed starts (``windows``);
* **noise**: a ``NoiseTape`` hands out uniform tensors in call order, each from its own seeded
  generator; every latent and action draw is Gumbel-argmax over that noise and every dropout
  mask is ``u >= p`` of it (``inject``), on both sides;
* **summaries**: a tensor is recorded by its float64 sum, norm, absolute sum and 64 entries at
  fixed positions (``summary``), so the reference files stay small.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import re
import zlib

import numpy as np
import torch
import torch.nn.functional as F

RELEASE = "SSubhnil/DramaUpdate@65b2aac (a copy of realwenlongwang/drama, ICLR 2025)"
WEIGHT_SEED = 20250101
# CPU threads of the recording and of the tests: the weight gradient of a conv layer at the
# paper batch sums ~8M fp32 products, and its summation order (hence its last ~3e-4 of
# relative accuracy) follows the thread count: the per-parameter gradient norm of the decoder's
# last layer moved by 3.4e-4 between 1 and 2 threads, against a release run on 2.
THREADS = 2
GAME, ENV_SEED, ACTION_SEED = "Krull", 3, 5
NUM_ACTIONS = 18  # Krull's full action set

# ---------------------------------------------------------------------------- name map
# (our state-dict name pattern, official name); ours are WorldModel / ActorCritic attributes.
_WM_MAP = [
    (r"encoder\.net\.(\d+)\.(.*)", "encoder.backbone.{0}.{1}"),
    (r"post_head\.(.*)", "dist_head.post_head.{0}"),
    (r"prior_head\.(.*)", "dist_head.prior_head.{0}"),
    (r"decoder\.stem\.(.*)", "image_decoder.backbone.0.{0}"),
    (r"decoder\.stem_norm\.0\.(.*)", "image_decoder.backbone.2.{0}"),
    # ours: net.{0,1,3,4,...} = official backbone.{4,5,7,8,...} (its Linear, Rearrange, BN, SiLU
    # come first)
    (r"decoder\.net\.(\d+)\.(.*)", "image_decoder.backbone.{0+4}.{1}"),
    (r"stem\.linear\.(.*)", "sequence_model.backbone.stem.0.{0}"),
    (r"stem\.norm\.(.*)", "sequence_model.backbone.stem.1.{0}"),
    (r"sequence\.(.*)", "sequence_model.backbone.{0}"),
    (r"reward_head\.net\.0\.(.*)", "reward_decoder.backbone.0.{0}"),
    (r"reward_head\.net\.1\.(.*)", "reward_decoder.backbone.1.{0}"),
    (r"reward_head\.net\.3\.(.*)", "reward_decoder.head.{0}"),
    (r"termination_head\.net\.0\.(.*)", "termination_decoder.backbone.0.{0}"),
    (r"termination_head\.net\.1\.(.*)", "termination_decoder.backbone.1.{0}"),
    (r"termination_head\.net\.3\.(.*)", "termination_decoder.head.{0}"),
]
_AC_MAP = [
    # the official actor starts with its VecNormalize, so its indices are ours + 1
    (r"actor\.(\d+)\.(.*)", "actor.{0+1}.{1}"),
    (r"critic\.(.*)", "critic.{0}"),
    (r"slow_critic\.(.*)", "slow_critic.{0}"),
]
# parameter groups for per-group gradient norms (official name prefixes)
WM_GROUPS = {
    "encoder": ("encoder.",),
    "latent_heads": ("dist_head.",),
    "decoder": ("image_decoder.",),
    "sequence_model": ("sequence_model.",),
    "reward_head": ("reward_decoder.",),
    "termination_head": ("termination_decoder.",),
}


def _fill(spec: re.Match, groups: tuple[str, ...]) -> str:
    """``{i}`` -> group i of the match; ``{i+k}`` -> group i (an index) plus k."""
    idx, _, add = spec.group(1).partition("+")
    value = groups[int(idx)]
    return str(int(value) + int(add)) if add else value


def official_name(ours: str, part: str) -> str:
    """The official state-dict name of our ``ours`` in ``part`` ('wm' or 'ac')."""
    for pattern, template in (_WM_MAP if part == "wm" else _AC_MAP):
        m = re.fullmatch(pattern, ours)
        if m:
            return re.sub(r"\{(\d+(?:\+\d+)?)\}", functools.partial(_fill, groups=m.groups()),
                          template)
    raise KeyError(f"no official name for {part} parameter {ours!r}")


# ---------------------------------------------------------------------------- weights
def derived_tensor(name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """A float32 tensor of ``shape`` derived from ``name`` (an official name) and the seed.

    Scales are those of a freshly initialised model (fan-in weights, norm gains near 1, Mamba's
    A/dt/D ranges, BatchNorm running statistics away from the identity so eval mode is tested).
    """
    g = torch.Generator().manual_seed(WEIGHT_SEED + zlib.crc32(name.encode()))
    leaf = name.rsplit(".", 1)[-1]
    n = torch.randn(shape, generator=g, dtype=torch.float64)
    u = torch.rand(shape, generator=g, dtype=torch.float64)
    if leaf == "A_log":
        t = torch.log(1.0 + 15.0 * u)
    elif leaf == "dt_bias":
        dt = torch.exp(math.log(1e-3) + u * (math.log(1e-1) - math.log(1e-3)))
        t = dt + torch.log(-torch.expm1(-dt))  # inverse softplus
    elif leaf == "D":
        t = 1.0 + 0.1 * n
    elif leaf == "running_mean":
        t = 0.1 * n
    elif leaf == "running_var":
        t = 0.5 + u
    elif len(shape) == 1 and leaf == "weight":  # BatchNorm / RMSNorm gains
        t = 1.0 + 0.1 * n
    elif len(shape) <= 1:  # biases, scalars
        t = 0.02 * n
    else:
        fan_in = int(np.prod(shape)) // shape[0]
        t = n / math.sqrt(fan_in)
    return t.float()


@torch.no_grad()
def set_derived(module: torch.nn.Module, part: str | None, prefix: str = "") -> None:
    """Overwrite every floating parameter/buffer of ``module`` with its derived tensor.

    ``part`` None: ``module`` is an official one (its names are the official names);
    'wm' / 'ac': ours, named through :func:`official_name`.
    """
    for name, t in module.state_dict(keep_vars=True).items():
        if not t.is_floating_point() or name.startswith(("input_norm.", "return_norm.")):
            continue  # statistics the official module keeps outside its state dict
        off = name if part is None else official_name(name, part)
        t.copy_(derived_tensor(prefix + off, tuple(t.shape)))


# Return-scale EMAs (5th / 95th percentile) set on both sides before the single actor-critic
# update, so that S = max(1, EMA gap) is above 1 and the advantage normalisation is exercised.
RETURN_EMAS = (-3.0, 3.0)


def latent_checksum(z: torch.Tensor, classes: int = 32) -> torch.Tensor:
    """Per (row, step) of one-hot latents (..., S*K): sum_s (s + 1) * argmax_s, int32."""
    idx = z.reshape(*z.shape[:-1], -1, classes).argmax(-1)  # (..., S)
    weights = torch.arange(1, idx.shape[-1] + 1, dtype=torch.int32, device=idx.device)
    return (idx.int() * weights).sum(-1).int().cpu()


def actor_input_stats(dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Running mean / var / count of the actor's input normalisation (both sides)."""
    mean = 0.05 * derived_tensor("agent.input_norm.mean", (dim,))
    var = 0.5 + derived_tensor("agent.input_norm.var", (dim,)).abs()
    return mean, var, torch.tensor(5000.0)


# ---------------------------------------------------------------------------- inputs
def real_stream(n: int, game: str = GAME) -> dict[str, np.ndarray]:
    """``n`` consecutive transitions of ``game`` under seeded random actions (real ALE frames).

    obs[t] is seen before action[t]; reward[t], termination[t] (terminated or life loss)
    follow it; after an episode end the next obs is the reset frame.
    """
    from drama.envs import make_env

    env = make_env(game, ENV_SEED)
    rng = np.random.default_rng(ACTION_SEED)
    obs, _ = env.reset()
    out = {"obs": [], "action": [], "reward": [], "termination": []}
    for _ in range(n):
        a = int(rng.integers(env.action_space.n))
        nxt, r, terminated, truncated, info = env.step(a)
        out["obs"].append(obs)
        out["action"].append(a)
        out["reward"].append(r)
        out["termination"].append(float(terminated or info["life_loss"]))
        obs = env.reset()[0] if terminated or truncated else nxt
    env.close()
    return {
        "obs": np.stack(out["obs"]),
        "action": np.asarray(out["action"], np.int64),
        "reward": np.asarray(out["reward"], np.float32),
        "termination": np.asarray(out["termination"], np.float32),
    }


def windows(stream: dict[str, np.ndarray], starts, length: int) -> dict[str, torch.Tensor]:
    """Windows of ``length`` at ``starts``: obs uint8 (B, L, 64, 64, 3) and the rest (B, L)."""
    idx = np.asarray(starts)[:, None] + np.arange(length)
    return {k: torch.from_numpy(v[idx]) for k, v in stream.items()}


def window_starts(seed: int, count: int, length: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).choice(n - length + 1, size=count, replace=False)


def frames_digest(obs: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(obs).tobytes()).hexdigest()


# ---------------------------------------------------------------------------- noise
class NoiseTape:
    """Uniform noise in call order: draw i comes from its own generator (seed, i)."""

    def __init__(self, seed: int):
        self.seed, self.calls = seed, 0

    def uniform(self, shape) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.calls)
        self.calls += 1
        return torch.rand(tuple(shape), generator=g)


def gumbel_argmax(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Indices of Categorical(logits) drawn with the uniforms ``u`` (Gumbel-max), as ours."""
    g = u.to(logits.device).clamp(min=1e-30).log().neg().clamp(min=1e-30).log().neg()
    return torch.argmax(logits.float() + g, dim=-1)


def tape_dropout(tape: NoiseTape, original):
    def dropout(x, p=0.5, training=True, inplace=False):
        if not training or p == 0.0:
            return original(x, p, training, inplace)
        keep = tape.uniform(x.shape) >= p  # drawn on the CPU on both sides
        return x * keep.to(device=x.device, dtype=x.dtype) / (1.0 - p)

    return dropout


@contextlib.contextmanager
def inject_ours(tape: NoiseTape):
    """Our latent/action draws and dropout masks from ``tape`` (on the CPU)."""
    import drama.agent
    import drama.distributions

    def sample_index(logits, generator=None):
        return gumbel_argmax(logits, tape.uniform(logits.shape))

    saved = (drama.distributions.sample_index, drama.agent.sample_index, F.dropout)
    drama.distributions.sample_index = drama.agent.sample_index = sample_index
    F.dropout = tape_dropout(tape, saved[2])
    try:
        yield tape
    finally:
        drama.distributions.sample_index, drama.agent.sample_index, F.dropout = saved


# ---------------------------------------------------------------------------- summaries
SAMPLE_POINTS = 64


def summary(t: torch.Tensor) -> torch.Tensor:
    """float64 (4 + 64,): sum, L2 norm, abs-sum, numel, then 64 entries at fixed positions."""
    flat = t.detach().reshape(-1).double().cpu()
    n = flat.numel()
    pos = torch.arange(SAMPLE_POINTS) * (n - 1) // (SAMPLE_POINTS - 1)  # exact integers
    head = torch.stack([flat.sum(), flat.norm(), flat.abs().sum(), torch.tensor(float(n),
                                                                                dtype=torch.float64)])
    return torch.cat([head, flat[pos]])


def grad_norms(named_params, groups: dict[str, tuple[str, ...]] | None = None) -> dict[str, float]:
    """Per-parameter gradient L2 norms (by official name) and, with ``groups``, per group."""
    out = {}
    for name, p in named_params:
        out[name] = 0.0 if p.grad is None else float(p.grad.detach().double().norm())
    if groups:
        for g, prefixes in groups.items():
            out["group:" + g] = math.sqrt(sum(v * v for k, v in list(out.items())
                                              if k.startswith(prefixes)))
    return out


def running_stats(module: torch.nn.Module, name=lambda key: key) -> dict[str, torch.Tensor]:
    """Summaries of a module's BatchNorm running means/variances (what eval mode uses:
    imagination and acting), keyed by ``name(state-dict key)``."""
    return {name(k): summary(v) for k, v in module.state_dict().items()
            if k.endswith(("running_mean", "running_var"))}


@contextlib.contextmanager
def record_outputs(named_modules: dict[str, torch.nn.Module], sink: dict):
    """``sink[name] = summary`` of each module's output at its first call inside the block."""
    def hook(key):
        def record(_module, _inputs, out):
            sink.setdefault(key, summary(out))  # the first call; returns None (no change)

        return record

    handles = [m.register_forward_hook(hook(k)) for k, m in named_modules.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def record_clip(named_params, groups, sink: list):
    """While active, every clip_grad_norm_ call first appends to ``sink`` the per-parameter
    (and, with ``groups``, per-group) gradient norms of ``named_params`` and then the total."""
    original = torch.nn.utils.clip_grad_norm_

    def clip(params, max_norm, *a, **kw):
        norms = grad_norms(named_params, groups)
        total = original(params, max_norm, *a, **kw)
        norms["total"] = float(total)
        sink.append(norms)
        return total

    torch.nn.utils.clip_grad_norm_ = clip
    try:
        yield
    finally:
        torch.nn.utils.clip_grad_norm_ = original


def param_change(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> dict:
    """Per parameter: sum(after - before) and sum((after - before) * before), in float64."""
    out = {}
    for k, b in before.items():
        d = after[k].double() - b.double()
        out[k] = torch.stack([d.sum(), (d * b.double()).sum(), d.norm()])
    return out
