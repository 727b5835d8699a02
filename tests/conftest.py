"""Shared fixtures. The plain helpers they build on (the ColourMatch environment, short debug
configs, run comparison, process helpers) are in helpers.py, imported by the test modules as
``from helpers import ...`` (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import pytest

from helpers import runner_env, write_runner


@pytest.fixture
def colour_runner(tmp_path):
    """The trainer's CLI on ColourMatch as a subprocess: (command prefix, environment)."""
    return write_runner(tmp_path), runner_env()
