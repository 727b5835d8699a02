"""Strict construction of a settings dataclass from a mapping (presets, --set, config.yaml).

The one place that rejects unknown keys (naming them and the known ones) and turns YAML lists
into tuples for tuple-typed fields; used by ``drama.config`` and the ``from_dict`` class
methods of WorldModelConfig and ReplayConfig.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


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
