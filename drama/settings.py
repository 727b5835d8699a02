"""The settings dataclasses' one copy of defaults, their checks, and strict construction.

* :func:`official_defaults` gives the fields of a settings dataclass their defaults from the
  ``defaults:`` section of ``drama/presets.yaml`` (the paper / official-code values, with the
  official names beside them). The dataclasses declare names, types and documentation only, so
  the defaults exist once; a field the YAML lacks, or a YAML key the class lacks, is an error at
  import. Derived fields (``derived=``) are not in the YAML: their default is ``None`` and
  ``drama.config.resolve_config`` computes them (e.g. ``replay.img_count_scale``).
* :func:`check_settings` (called by each class's ``__post_init__``) checks every field's type
  against its annotation and its value against :data:`RULES` (ranges, enum values), raising one
  ValueError that names each bad ``section.key`` with its value and what is allowed.
* :func:`build_settings` rejects unknown keys (naming them and the known ones) and turns YAML
  lists into tuples for tuple-typed fields; used by ``drama.config`` and the ``from_dict``
  class methods.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import numbers
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
PRESETS_PATH = Path(__file__).with_name("presets.yaml")


@functools.cache
def _yaml_defaults() -> dict[str, Any]:
    with open(PRESETS_PATH) as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict) or not isinstance(data.get("defaults"), dict):
        raise ValueError(f"{PRESETS_PATH}: missing top-level section 'defaults'")
    return data["defaults"]


def official_defaults(section: str, derived: tuple[str, ...] = ()):
    """Class decorator (below ``@dataclass``): defaults from presets.yaml ``defaults.<section>``."""

    def wrap(cls):
        values = _yaml_defaults().get(section)
        if not isinstance(values, dict):
            raise ValueError(f"{PRESETS_PATH}: defaults has no section {section!r}")
        names = list(cls.__dict__.get("__annotations__", {}))
        missing = [n for n in names if n not in values and n not in derived]
        extra = sorted(set(values) - set(names))
        if missing or extra:
            raise ValueError(f"{PRESETS_PATH} defaults.{section} and {cls.__name__} disagree: "
                             f"missing in the YAML {missing}, unknown to the class {extra}")
        for name in names:
            if name in derived:
                setattr(cls, name, None)
                continue
            value = values[name]
            ann = str(cls.__annotations__[name])
            if isinstance(value, list) and ann.startswith("tuple"):
                value = tuple(value)
            if isinstance(value, (dict, list)):
                setattr(cls, name, dataclasses.field(
                    default_factory=functools.partial(copy.deepcopy, value)))
            else:
                setattr(cls, name, value)
        return cls

    return wrap


def _positive(x) -> bool:
    return x > 0


def _nonneg(x) -> bool:
    return x >= 0


def _unit_open(x) -> bool:  # [0, 1)
    return 0 <= x < 1


def _unit(x) -> bool:  # [0, 1]
    return 0 <= x <= 1


def _decay(x) -> bool:  # (0, 1)
    return 0 < x < 1


def _betas(x) -> bool:
    return len(x) == 2 and all(0 <= b < 1 for b in x)


def _enum(*allowed):
    def check(x) -> bool:
        return x in allowed

    check.allowed = allowed  # type: ignore[attr-defined]
    return check


_WHAT = {_positive: "> 0", _nonneg: ">= 0", _unit_open: "in [0, 1)", _unit: "in [0, 1]",
         _decay: "in (0, 1)", _betas: "two values in [0, 1)"}


RULES: dict[str, dict[str, Any]] = {
    "world_model": {
        "d_model": _positive, "n_layers": _positive, "stoch": _positive,
        "classes": lambda x: x >= 2, "unimix": _unit_open, "encoder_depth": _positive,
        "encoder_mults": lambda x: len(x) >= 1 and all(m >= 1 for m in x),
        "kernel": lambda x: x >= 1 and x % 2 == 1, "head_hidden": _positive,
        "reward_bins": lambda x: x >= 2, "free_bits": _nonneg, "kl_dyn": _nonneg,
        "kl_rep": _nonneg, "lr": _nonneg, "betas": _betas, "eps": _positive,
        "weight_decay": _nonneg, "grad_clip": _positive, "warmup_updates": _nonneg,
    },
    "replay": {
        "capacity": _positive, "sampling": _enum("dfs", "uniform"), "wm_tau": _positive,
        "img_tau": _positive, "alpha": _nonneg, "beta": _nonneg,
        "img_count_scale": lambda x: x is None or x > 0, "warmup": _nonneg,
    },
    "actor_critic": {
        "actor_hidden": _positive, "critic_hidden": _positive, "layers": _positive,
        "value_bins": lambda x: x >= 2, "gamma": _unit, "lam": _unit, "entropy_coef": _nonneg,
        "return_norm_decay": _unit_open, "return_norm_low": _unit, "return_norm_high": _unit,
        "slow_critic_decay": _unit_open, "slow_reg_coef": _nonneg, "unimix": _unit_open,
        "input_norm_clip": _positive, "lr": _nonneg, "eps": _positive, "betas": _betas,
        "weight_decay": _nonneg, "grad_clip": _positive, "warmup_updates": _nonneg,
        "imag_batch": _positive, "imag_context": _positive, "imag_horizon": _positive,
        "acting": _enum("context", "recurrent"), "acting_context": _positive,
        "imag_start": _enum("prior", "posterior"), "return_form": _enum("official", "dreamerv3"),
    },
    "train": {
        "steps": _positive, "wm_batch": _positive, "wm_seq_len": lambda x: x >= 2,
        "train_every": _positive, "eval_every": _nonneg, "eval_episodes": _positive,
        "final_eval_episodes": _positive, "eval_batch": _positive,
        "checkpoint_every": _positive, "log_every": _positive, "torch_threads": _nonneg,
        "nonfinite_patience": _positive, "compile": _enum("auto", "on", "off"),
        "eval_env": _enum("release", "training"), "eval_context": _enum("carry", "fresh"),
    },
}
"""Allowed values per section and key (types come from the annotations). Cross-field checks
(e.g. reward_high > reward_low) are in :data:`CROSS`."""

CROSS: dict[str, list[tuple[str, Any]]] = {
    "world_model": [("reward_high > reward_low", lambda c: c.reward_high > c.reward_low)],
    "actor_critic": [
        ("value_high > value_low", lambda c: c.value_high > c.value_low),
        ("return_norm_high > return_norm_low",
         lambda c: c.return_norm_high > c.return_norm_low),
    ],
}


def _sequence_problems(c: Any) -> list[str]:
    """world_model.sequence_kind / sequence_backend / sequence_options against drama.sequence."""
    from drama.model_config import SEQUENCE_BACKENDS as BACKENDS
    from drama.model_config import SEQUENCE_KINDS
    from drama.model_config import SEQUENCE_OPTIONS as OPTIONS

    if c.sequence_kind not in SEQUENCE_KINDS:
        return [f"world_model.sequence_kind={c.sequence_kind!r} must be one of "
                f"{list(SEQUENCE_KINDS)}"]
    out = []
    if c.sequence_backend not in BACKENDS:
        out.append(f"world_model.sequence_backend={c.sequence_backend!r} must be one of "
                   f"{list(BACKENDS)}")
    known = OPTIONS[c.sequence_kind]
    for key, value in c.sequence_options.items():
        if key not in known or key == "device":
            out.append(f"world_model.sequence_options.{key} is not an option of "
                       f"{c.sequence_kind} (known: {sorted(k for k in known if k != 'device')})")
            continue
        default = known[key]
        if default is None or value is None:
            continue
        # no check for str defaults: e.g. dt_rank is "auto" or an int
        ann = {bool: "bool", int: "int", float: "float"}.get(type(default))
        if isinstance(default, tuple):
            ann = f"tuple[{type(default[0]).__name__}, ...]"
        if ann is not None and not _type_ok(value, ann)[0]:
            out.append(f"world_model.sequence_options.{key}={value!r} is not of type {ann}")
    return out


SPECIAL = {"world_model": _sequence_problems}


def _type_ok(value: Any, ann: str) -> tuple[bool, Any]:
    """(ok, value coerced to the annotation: ints accepted for floats, lists for tuples)."""
    ann = ann.replace(" ", "")
    if ann.endswith("|None") or ann.startswith("None|"):
        if value is None:
            return True, None
        ann = ann.replace("|None", "").replace("None|", "")
    if ann == "bool":
        return isinstance(value, bool), value
    if ann == "int":
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        return ok, int(value) if ok else value
    if ann == "float":
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if ann == "str":
        return isinstance(value, str), value
    if ann.startswith("dict"):
        return isinstance(value, dict), value
    if ann.startswith("tuple"):
        if not isinstance(value, (list, tuple)):
            return False, value
        inner = ann[len("tuple["):-1].split(",")[0]
        items = []
        for v in value:
            ok, v = _type_ok(v, inner)
            if not ok:
                return False, value
            items.append(v)
        if ",..." not in ann and len(items) != ann.count(",") + 1:
            return False, value
        return True, tuple(items)
    return True, value  # Any and other annotations: no type check


def check_settings(obj: Any, section: str) -> None:
    """Check (and coerce in place) every field of a settings dataclass; one ValueError naming
    every bad ``section.key``."""
    problems = []
    rules = RULES.get(section, {})
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        ok, coerced = _type_ok(value, str(f.type))
        if not ok:
            problems.append(f"{section}.{f.name}={value!r} is not of type {f.type}")
            continue
        object.__setattr__(obj, f.name, coerced)
        rule = rules.get(f.name)
        if rule is not None and not rule(coerced):
            allowed = getattr(rule, "allowed", None)
            what = (f"one of {list(allowed)}" if allowed else _WHAT.get(rule, "in range"))
            problems.append(f"{section}.{f.name}={coerced!r} must be {what}")
    if not problems:
        for text, check in CROSS.get(section, []):
            if not check(obj):
                problems.append(f"{section}: needs {text}")
        if section in SPECIAL:
            problems += SPECIAL[section](obj)
    if problems:
        raise ValueError("invalid setting(s): " + "; ".join(problems))


def build_settings(cls: type[T], data: dict[str, Any], section: str) -> T:
    """``cls(**data)``, or a ValueError naming every key of ``data`` that ``cls`` lacks."""
    fields = {f.name: f.type for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown config key(s) in {section}: {unknown}; known keys: {sorted(fields)}"
        )
    kwargs = {
        key: tuple(val) if isinstance(val, list) and "tuple" in str(fields[key]) else val
        for key, val in data.items()
    }
    return cls(**kwargs)
