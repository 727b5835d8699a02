"""Run configuration: presets, variants and ``--set`` overrides resolved into dataclasses.

Resolution order (later wins): the dataclass defaults (= the paper / official code), the
``defaults`` section of ``drama/presets.yaml``, the chosen preset (``atari100k`` adds nothing;
``debug`` is CPU-sized), the variant (which sequence model, which sampler), then each
``--set section.key=value`` in order. Unknown presets, variants, sections and keys are errors
naming the offender. The resolved config is written to ``config.yaml`` in the run directory and
compared on resume.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drama.agent import ActorCriticConfig
from drama.replay import ReplayConfig
from drama.settings import build_settings as _build
from drama.world_model import WorldModelConfig

PRESETS_PATH = Path(__file__).with_name("presets.yaml")


@dataclass
class TrainConfig:
    """The training loop; defaults are the paper's Atari100k protocol."""

    steps: int = 100_000
    """Environment steps (agent steps, 4 frames each). The official code samples 105,000 with
    training frozen after 100,000; we stop at ``steps`` (README deviations)."""
    wm_batch: int = 16
    """World-model batch: sequences per update."""
    wm_seq_len: int = 128
    """World-model batch: steps per sequence."""
    train_every: int = 1
    """One world-model and one actor-critic update every ``train_every`` env steps, once the
    replay holds more than ``replay.warmup`` transitions (random actions until then)."""
    eval_every: int = 10_000
    """Env steps between learning-curve evaluations (0: none)."""
    eval_episodes: int = 10
    """Episodes per learning-curve evaluation."""
    final_eval_episodes: int = 100
    """Episodes of the final evaluation (the run's score is their mean return)."""
    eval_greedy: bool = True
    """Evaluate with argmax actions (the official eval.py); training always samples."""
    eval_batch: int = 10
    """Evaluation episodes run side by side (one batched network call per step)."""
    checkpoint_every: int = 5_000
    """Env steps between checkpoints (the first episode end after each multiple)."""
    log_every: int = 500
    """Env steps between metrics.jsonl rows of averaged training metrics."""
    deterministic: bool = False
    """torch.use_deterministic_algorithms(True) (CPU runs are then bit-reproducible)."""
    nonfinite_patience: int = 100
    """A world-model or actor-critic update whose loss or gradient is not finite is skipped
    (official: GradScaler skips it silently) and counted in metrics.jsonl; the run fails
    (failure.json, exit code 3) once ``nonfinite_patience`` consecutive env steps had a skipped
    update. Checked at log intervals and checkpoints (one host read of device counters)."""
    torch_threads: int = 0
    """torch.set_num_threads for this run (0: torch's default, one per core). Use 1 when
    several runs share the cores: oversubscribed threads slow small models down ~10x."""
    compile: str = "auto"
    """torch.compile the world-model and actor-critic updates (drama/compile.py): auto (on for
    CUDA, off on the CPU), on or off. Recorded in run_info.json."""

    def __post_init__(self) -> None:
        if self.compile not in ("auto", "on", "off"):
            raise ValueError(f"train.compile must be auto, on or off, got {self.compile!r}")


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
    if tree["train"]["steps"] < 1:
        raise ValueError(f"train.steps must be >= 1, got {tree['train']['steps']}")
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"unknown device {device!r}; use auto, cpu or cuda")
    world_model = _build(WorldModelConfig, tree["world_model"], "world_model")
    replay = _build(ReplayConfig, tree["replay"], "replay")
    return RunConfig(game=game, seed=seed, variant=variant, preset=preset, device=device,
                     world_model=world_model, replay=replay,
                     actor_critic=_build(ActorCriticConfig, tree["actor_critic"], "actor_critic"),
                     train=_build(TrainConfig, tree["train"], "train"), env=tree["env"])


def config_from_dict(d: dict[str, Any]) -> RunConfig:
    """Rebuild a RunConfig from ``RunConfig.to_dict()`` (e.g. a run's config.yaml)."""
    return RunConfig(game=d["game"], seed=d["seed"], variant=d["variant"], preset=d["preset"],
                     device=d.get("device", "auto"),
                     world_model=_build(WorldModelConfig, d["world_model"], "world_model"),
                     replay=_build(ReplayConfig, d["replay"], "replay"),
                     actor_critic=_build(ActorCriticConfig, d["actor_critic"], "actor_critic"),
                     train=_build(TrainConfig, d["train"], "train"), env=dict(d["env"]))


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
