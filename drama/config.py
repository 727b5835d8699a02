"""Run configuration: presets, variants and ``--set`` overrides resolved into dataclasses.

Resolution order (later wins): the ``defaults`` section of ``drama/presets.yaml`` (the paper /
official code; the one copy of the defaults, which the settings dataclasses take theirs from),
the chosen preset (``atari100k`` adds nothing;
``debug`` is CPU-sized), the variant (which sequence model, which sampler), then each
``--set section.key=value`` in order. Unknown presets, variants, sections and keys are errors
naming the offender, and so is a value of the wrong type or out of range (each dataclass checks
itself in ``__post_init__``, drama.settings.RULES), a bad protocol override (``env``) or sequence
option. Derived values (``replay.img_count_scale``) are computed here, never set. The resolved
config is written to ``config.yaml`` in the run directory (by the trainer, once the models and
the environment are built) and compared on resume.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drama.model_config import ActorCriticConfig, ReplayConfig, WorldModelConfig
from drama.settings import PRESETS_PATH, check_settings, official_defaults
from drama.settings import build_settings as _build



@dataclass
@official_defaults("train")
class TrainConfig:
    """The training loop; defaults are the paper's Atari100k protocol."""

    steps: int
    """Environment steps (agent steps, 4 frames each). The official code samples 105,000 with
    training frozen after 100,000; we stop at ``steps`` (docs/deviations.md)."""
    wm_batch: int
    """World-model batch: sequences per update."""
    wm_seq_len: int
    """World-model batch: steps per sequence."""
    train_every: int
    """One world-model and one actor-critic update every ``train_every`` env steps, once the
    replay holds more than ``replay.warmup`` transitions (random actions until then)."""
    eval_every: int
    """Env steps between learning-curve evaluations (0: none). The release evaluates every
    1,000 steps (``Evaluate.EverySteps``); 10,000 is ours (docs/deviations.md)."""
    eval_at_start: bool
    """Also evaluate before the first step (the release evaluates at step 0)."""
    eval_episodes: int
    """Episodes per learning-curve evaluation."""
    final_eval_episodes: int
    """Episodes of the final evaluation (the run's score is their mean return)."""
    eval_greedy: bool
    """Evaluate with argmax actions (the official eval.py); training always samples."""
    eval_batch: int
    """Evaluation episodes run side by side (one batched network call per step)."""
    eval_env: str
    """Evaluation environment: ``release`` (the release's eval.py env: the training protocol
    but the action repeat is not cut at a life loss, ``break_repeat_on_life_loss: false``)
    or ``training`` (the training env's protocol, ours; variant ``corrected``)."""
    eval_context: str
    """``carry`` (the release's eval.py): each of the ``eval_batch`` env slots plays its
    episodes one after another and the acting context (``acting=context``) runs on from one
    episode into the next, never cleared; ``fresh`` (ours; variant ``corrected``): every
    episode starts with an empty context. With ``acting=recurrent`` every episode starts from
    a fresh recurrent state either way."""
    checkpoint_every: int
    """Env steps between checkpoints (the first episode end after each multiple)."""
    log_every: int
    """Env steps between metrics.jsonl rows of averaged training metrics."""
    deterministic: bool
    """torch.use_deterministic_algorithms(True) (CPU runs are then bit-reproducible)."""
    nonfinite_patience: int
    """A world-model or actor-critic update whose loss or gradient is not finite is skipped
    (official: GradScaler skips it silently) and counted in metrics.jsonl; the run fails
    (failure.json, exit code 3) once ``nonfinite_patience`` consecutive env steps had a skipped
    update. Checked at log intervals and checkpoints (one host read of device counters)."""
    torch_threads: int
    """torch.set_num_threads for this run (0: torch's default, one per core). Use 1 when
    several runs share the cores: oversubscribed threads slow small models down ~10x."""
    keep_replay: bool
    """Keep the replay buffer in a finished run's checkpoint (to continue training it later).
    False: once eval.parquet is written the checkpoint is rewritten without the replay (the
    replay is most of its size: ~1.2 GB of frames at the paper preset); weights, optimisers,
    counters and RNG states stay, so the run can still be evaluated or analysed."""
    compile: str
    """torch.compile the world-model and actor-critic updates (drama/compile.py): auto (on for
    CUDA, off on the CPU), on or off. Recorded in run_info.json."""
    tensorboard: bool
    """Also write every metrics.jsonl row as TensorBoard scalars (same names and steps), the
    evaluation returns and the open-loop strips into the run directory (drama/tensorboard.py;
    needs ``pip install -e ".[tensorboard]"``). Output only: see :data:`OUTPUT_SETTINGS`."""
    openloop: bool
    """At each evaluation, write the world model's open-loop predictions on a replay window to
    ``openloop/step<N>.png`` and ``.gif`` in the run directory (drama/openloop.py). Output
    only: see :data:`OUTPUT_SETTINGS`."""

    def __post_init__(self) -> None:
        check_settings(self, "train")


@dataclass
class RunConfig:
    """Everything a run depends on (written to config.yaml)."""

    game: str
    seed: int
    variant: str
    preset: str
    device: str = "auto"
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    actor_critic: ActorCriticConfig = field(default_factory=ActorCriticConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    env: dict[str, Any] = field(default_factory=dict)
    """Protocol overrides passed to drama.envs.make_env (empty: the Atari100k protocol)."""

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


OUTPUT_SETTINGS = ("device", "train.tensorboard", "train.openloop")
"""Settings that change what a run writes or where it runs, never what it computes: left out
when a resumed run's config is compared with the saved one (so TensorBoard can be switched on
for a run already training) and from :func:`settings_key` (so switching it on for a grid keeps
the grid's results folder and runs)."""


def comparable(d: dict[str, Any]) -> dict[str, Any]:
    """A config dict (``RunConfig.to_dict()`` / config.yaml) without :data:`OUTPUT_SETTINGS`."""
    out = copy.deepcopy(d)
    for dotted in OUTPUT_SETTINGS:
        *parents, last = dotted.split(".")
        node = out
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return out


SECTIONS = {"world_model": WorldModelConfig, "replay": ReplayConfig,
            "actor_critic": ActorCriticConfig, "train": TrainConfig}


def _plain(obj):
    """Tuples -> lists recursively, so the dict round-trips through yaml.safe_dump."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def load_presets(path: str | Path = PRESETS_PATH) -> dict[str, Any]:
    with open(path) as f:
        data = yaml.safe_load(f)
    for key in ("defaults", "presets", "variants"):
        if key not in data:
            raise ValueError(f"{path}: missing top-level section {key!r}")
    return data


def _merge(base: dict, update: dict, where: str) -> None:
    """Merge ``update`` into ``base`` in place; keys must exist in ``base`` (except in dicts
    that are free-form option maps, whose defaults are empty dicts)."""
    for key, val in update.items():
        if key not in base:
            if where in ("env",) or where.endswith("_options") or where.endswith("options"):
                base[key] = val
                continue
            raise ValueError(f"unknown config key {where}.{key}; known keys in {where}: "
                             f"{sorted(base)}")
        if isinstance(base[key], dict) and isinstance(val, dict):
            _merge(base[key], val, f"{where}.{key}")
        else:
            base[key] = val


def parse_value(text: str, default: Any) -> Any:
    """Parse a ``--set`` value using the type of the current value."""
    if isinstance(default, bool):
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {text!r}")
    if isinstance(default, int) and not isinstance(default, bool):
        try:
            return int(text)
        except ValueError:
            f = float(text)
            if f != int(f):
                raise ValueError(f"expected an integer, got {text!r}") from None
            return int(f)
    if isinstance(default, float):
        return float(text)
    if isinstance(default, str):
        return text
    return yaml.safe_load(text)  # lists, dicts, None


def apply_set(tree: dict, assignment: str) -> None:
    """Apply one ``section.key[.subkey]=value`` to the config tree (in place)."""
    if "=" not in assignment:
        raise ValueError(f"--set expects key=value, got {assignment!r}")
    path, text = assignment.split("=", 1)
    keys = path.strip().split(".")
    node, where = tree, ""
    for key in keys[:-1]:
        if key not in node or not isinstance(node[key], dict):
            raise ValueError(f"unknown config key {path!r}: no section {where + key!r}")
        node, where = node[key], f"{where}{key}."
    last = keys[-1]
    if last not in node:
        if where.rstrip(".").endswith("options") or where == "env.":
            node[last] = yaml.safe_load(text)
            return
        raise ValueError(f"unknown config key {path!r}; known keys in "
                         f"{where.rstrip('.') or 'the top level'}: {sorted(node)}")
    try:
        node[last] = parse_value(text, node[last])
    except ValueError as e:
        raise ValueError(f"--set {path}: {e}") from e


def resolve_config(game: str, seed: int, variant: str, preset: str = "atari100k",
                   sets: list[str] | None = None, steps: int | None = None,
                   device: str = "auto", presets_path: str | Path = PRESETS_PATH) -> RunConfig:
    """Resolve defaults + preset + variant + overrides into a validated :class:`RunConfig`."""
    data = load_presets(presets_path)
    if preset not in data["presets"]:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(data['presets'])}")
    if variant not in data["variants"]:
        raise ValueError(f"unknown variant {variant!r}; choose from {sorted(data['variants'])}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    tree: dict[str, Any] = {name: _plain(dataclasses.asdict(cls())) for name, cls in
                            SECTIONS.items()}
    tree["env"] = {}
    for layer_name, layer in (("defaults", data["defaults"]), (f"preset {preset}",
                              data["presets"][preset]), (f"variant {variant}",
                              data["variants"][variant])):
        for section, values in (layer or {}).items():
            if section not in tree:
                raise ValueError(f"{presets_path} {layer_name}: unknown section {section!r}; "
                                 f"known: {sorted(tree)}")
            _merge(tree[section], copy.deepcopy(values or {}), section)
    for assignment in sets or []:
        apply_set(tree, assignment)
    if steps is not None:
        tree["train"]["steps"] = int(steps)
    if tree["replay"].get("img_count_scale") is not None:
        raise ValueError("replay.img_count_scale is derived (actor_critic.imag_batch / "
                         "train.wm_batch); set those instead")
    check_env(tree["env"])
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"unknown device {device!r}; use auto, cpu or cuda")
    world_model = _build(WorldModelConfig, tree["world_model"], "world_model")
    actor_critic = _build(ActorCriticConfig, tree["actor_critic"], "actor_critic")
    train = _build(TrainConfig, tree["train"], "train")
    tree["replay"]["img_count_scale"] = actor_critic.imag_batch / train.wm_batch
    replay = _build(ReplayConfig, tree["replay"], "replay")
    return RunConfig(game=game, seed=seed, variant=variant, preset=preset, device=device,
                     world_model=world_model, replay=replay, actor_critic=actor_critic,
                     train=train, env=tree["env"])


def check_env(env: dict[str, Any]) -> None:
    """Protocol overrides (``env.*``): known keys (drama.envs), the default's type, ranges."""
    from drama.envs import DEFAULT_PROTOCOL, atari_protocol

    bad = []
    for key, value in env.items():
        if key not in DEFAULT_PROTOCOL:
            continue  # atari_protocol names unknown keys with the known ones
        default = DEFAULT_PROTOCOL[key]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, type(default)) or default is None
        if not ok:
            bad.append(f"env.{key}={value!r} is not of type {type(default).__name__}")
    if bad:
        raise ValueError("invalid setting(s): " + "; ".join(bad))
    try:
        atari_protocol(**env)
    except ValueError as e:
        raise ValueError(f"env: {e}") from None


def config_from_dict(d: dict[str, Any]) -> RunConfig:
    """Rebuild a RunConfig from ``RunConfig.to_dict()`` (e.g. a run's config.yaml)."""
    return RunConfig(game=d["game"], seed=d["seed"], variant=d["variant"], preset=d["preset"],
                     device=d.get("device", "auto"),
                     world_model=_build(WorldModelConfig, d["world_model"], "world_model"),
                     replay=_build(ReplayConfig, d["replay"], "replay"),
                     actor_critic=_build(ActorCriticConfig, d["actor_critic"], "actor_critic"),
                     train=_build(TrainConfig, d["train"], "train"), env=dict(d["env"]))


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, val in d.items():
        if isinstance(val, dict) and val:
            out.update(_flat(val, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = val
    return out


def settings_key(preset: str, sets: list[str] | None = None, steps: int | None = None,
                 variants: list[str] | tuple[str, ...] = ("drama",),
                 presets_path: str | Path = PRESETS_PATH) -> str:
    """The name of the results folder for runs of ``preset`` with these overrides.

    ``preset`` alone when the overrides change nothing, else ``preset-<8 hex>``: a SHA-256 of
    the settings that differ from the preset (dotted key = resolved value, sorted), so the
    spelling of a value (``75`` vs ``75.0``, the order of ``--set``) does not matter but any
    change of what the runs compute does. Resolves the settings for every variant in
    ``variants`` first: an invalid override is a ValueError before anything runs.
    """
    import hashlib
    import json

    if not variants:
        raise ValueError("settings_key: no variants")
    changed: dict[str, Any] = {}
    for variant in variants:
        base = _flat(comparable(resolve_config("Pong", 0, variant, preset,
                                               presets_path=presets_path).to_dict()))
        mine = _flat(comparable(resolve_config("Pong", 0, variant, preset, sets, steps,
                                               presets_path=presets_path).to_dict()))
        changed.update({k: v for k, v in mine.items() if base.get(k, "<missing>") != v})
    if not changed:
        return preset
    text = json.dumps(sorted(changed.items()), default=str, separators=(",", ":"))
    return f"{preset}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "<missing>"), b.get(key, "<missing>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: {va!r} != {vb!r}")
    return out


def run_config_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """:func:`config_diff` of two run config dicts without :data:`OUTPUT_SETTINGS` (what a
    resumed or reloaded run must agree on)."""
    return config_diff(comparable(a), comparable(b))
