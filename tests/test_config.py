"""Presets, variants and --set overrides."""

import json
import re
import subprocess
import sys

import pytest
import yaml

from drama.agent import ActorCriticConfig
from drama.config import (PRESETS_PATH, TrainConfig, config_from_dict, load_presets,
                          resolve_config)
from drama.replay import ReplayConfig
from drama.world_model import WorldModelConfig


def test_atari100k_preset_is_the_paper():
    cfg = resolve_config("Pong", 0, "drama", "atari100k")
    ac, t, r, w = cfg.actor_critic, cfg.train, cfg.replay, cfg.world_model
    assert (ac.gamma, ac.lam, ac.entropy_coef, ac.lr, ac.eps, ac.grad_clip) == \
        (0.985, 0.95, 3e-4, 4e-5, 1e-20, 100.0)
    assert (ac.imag_batch, ac.imag_context, ac.imag_horizon, ac.slow_critic_decay) == \
        (1024, 8, 16, 0.98)
    assert (t.steps, t.wm_batch, t.wm_seq_len, t.eval_every, t.eval_episodes,
            t.final_eval_episodes) == (100_000, 16, 128, 10_000, 10, 100)
    assert (r.warmup, r.capacity, r.sampling) == (1032, 100_000, "dfs")
    assert (w.sequence_kind, w.d_model, w.lr, w.weight_decay) == ("mamba2", 512, 4e-5, 1e-4)


# A fresh interpreter reading a copy of presets.yaml (argv[1]) instead of drama/presets.yaml;
# prints every settings dataclass's field defaults as JSON.
FRESH_DEFAULTS = """
import dataclasses, json, pathlib, sys
import drama.settings as s
s.PRESETS_PATH = pathlib.Path(sys.argv[1])
from drama.config import ActorCriticConfig, ReplayConfig, TrainConfig, WorldModelConfig
out = {}
for section, cls in (("world_model", WorldModelConfig), ("replay", ReplayConfig),
                     ("actor_critic", ActorCriticConfig), ("train", TrainConfig)):
    out[section] = {f.name: f.default if f.default_factory is dataclasses.MISSING
                    else f.default_factory() for f in dataclasses.fields(cls)}
print(json.dumps(out, default=list))
"""


def _fresh_defaults(tmp_path, defaults: dict) -> subprocess.CompletedProcess:
    data = yaml.safe_load(PRESETS_PATH.read_text())
    data["defaults"] = defaults
    path = tmp_path / "presets.yaml"
    path.write_text(yaml.safe_dump(data))
    return subprocess.run([sys.executable, "-c", FRESH_DEFAULTS, str(path)], capture_output=True,
                          text=True, timeout=300)


def test_every_default_is_the_one_in_presets_yaml(tmp_path):
    """The dataclasses take each default from presets.yaml's ``defaults:`` (one copy): with every
    number in a copy of that section changed, a fresh interpreter's dataclasses have exactly the
    copy's values (derived fields: None)."""
    def bump(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return v
        return v + 1 if isinstance(v, int) else v * 1.5 + 1e-3

    changed = {sec: {k: bump(v) for k, v in vals.items()}
               for sec, vals in load_presets()["defaults"].items()}
    res = _fresh_defaults(tmp_path, changed)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout)
    assert set(got) <= set(changed)
    for section, fields in got.items():
        expected = {**json.loads(json.dumps(changed[section])), "img_count_scale": None}
        assert fields == {k: expected[k] for k in fields}, section
    assert got["world_model"]["d_model"] == 513 and got["train"]["steps"] == 100_001


def test_yaml_and_class_disagreeing_is_an_error_at_import(tmp_path):
    """A field the YAML's defaults lack, or a key the class lacks: importing the settings fails,
    naming both."""
    defaults = load_presets()["defaults"]
    steps = defaults["train"].pop("steps")
    defaults["train"]["stepz"] = steps
    res = _fresh_defaults(tmp_path, defaults)
    assert res.returncode != 0
    assert ("defaults.train and TrainConfig disagree: missing in the YAML ['steps'], unknown to "
            "the class ['stepz']") in res.stderr, res.stderr[-3000:]


def test_img_count_scale_is_derived():
    assert resolve_config("Pong", 0, "drama", "atari100k").replay.img_count_scale == 64.0
    assert resolve_config("Pong", 0, "drama", "debug").replay.img_count_scale == 32 / 4
    cfg = resolve_config("Pong", 0, "drama", "debug", ["actor_critic.imag_batch=48",
                                                       "train.wm_batch=3"])
    assert cfg.replay.img_count_scale == 16.0
    with pytest.raises(ValueError, match="img_count_scale is derived"):
        resolve_config("Pong", 0, "drama", "debug", ["replay.img_count_scale=2"])


@pytest.mark.parametrize("assignment, needle", [
    ("world_model.sequence_kind=lstm", "world_model.sequence_kind='lstm' must be one of"),
    ("world_model.sequence_backend=cudnn", "world_model.sequence_backend"),
    ("world_model.encoder_mults=3", "world_model.encoder_mults=3 is not of type"),
    ("world_model.encoder_mults=[1, 0]", "world_model.encoder_mults"),
    ("world_model.kernel=4", "world_model.kernel"),
    ("world_model.sequence_options.d_statee=8", "sequence_options.d_statee is not an option"),
    ("world_model.sequence_options.d_state=abc", "sequence_options.d_state='abc'"),
    ("world_model.reward_low=30", "reward_high > reward_low"),
    ("env.noop_max=abc", "env.noop_max='abc' is not of type int"),
    ("env.noop_max=-1", "noop_max"),
    ("env.noop_maxx=3", "noop_maxx"),
    ("train.eval_every=-3", "train.eval_every=-3 must be >= 0"),
    ("train.checkpoint_every=0", "train.checkpoint_every=0 must be > 0"),
    ("train.log_every=0", "train.log_every"),
    ("train.torch_threads=-1", "train.torch_threads"),
    ("actor_critic.gamma=1.5", "actor_critic.gamma=1.5 must be in [0, 1]"),
    ("actor_critic.imag_batch=0", "actor_critic.imag_batch"),
    ("actor_critic.betas=[0.9]", "actor_critic.betas"),
    ("replay.capacity=0", "replay.capacity"),
    ("replay.sampling=prioritised", "replay.sampling='prioritised' must be one of"),
])
def test_every_section_is_checked(assignment, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        resolve_config("Pong", 0, "drama", "debug", [assignment])


def test_dataclasses_check_themselves():
    with pytest.raises(ValueError, match="actor_critic.gamma"):
        ActorCriticConfig(gamma=-0.1)
    with pytest.raises(ValueError, match="train.steps=0"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="world_model.d_model='64' is not of type int"):
        WorldModelConfig(d_model="64")
    assert TrainConfig(steps=5).steps == 5 and isinstance(ReplayConfig(alpha=1).alpha, float)


@pytest.mark.parametrize("variant,kind,sampling", [
    ("drama", "mamba2", "dfs"), ("uniform", "mamba2", "uniform"), ("mamba1", "mamba1", "dfs"),
    ("transformer", "transformer", "dfs"), ("gru", "gru", "dfs")])
def test_variants(variant, kind, sampling):
    cfg = resolve_config("Pong", 1, variant, "debug")
    assert (cfg.world_model.sequence_kind, cfg.replay.sampling) == (kind, sampling)
    assert cfg.world_model.d_model < 512 and cfg.train.steps < 100_000  # debug preset applied


def test_set_overrides_and_types():
    cfg = resolve_config("Pong", 0, "drama", "debug", [
        "world_model.lr=1e-4", "train.eval_every=0", "train.deterministic=true",
        "world_model.encoder_mults=[1, 2, 2, 2, 2]", "world_model.sequence_options.d_state=8",
        "env.noop_max=30", "actor_critic.betas=[0.9, 0.99]"], steps=123)
    assert cfg.world_model.lr == 1e-4 and isinstance(cfg.world_model.lr, float)
    assert cfg.train.eval_every == 0 and cfg.train.deterministic is True
    assert cfg.world_model.encoder_mults == (1, 2, 2, 2, 2)
    assert cfg.world_model.sequence_options == {"d_state": 8}
    assert cfg.env == {"noop_max": 30}
    assert cfg.actor_critic.betas == (0.9, 0.99)
    assert cfg.train.steps == 123


@pytest.mark.parametrize("kwargs,needle", [
    ({"variant": "mamba3"}, "mamba3"),
    ({"preset": "huge"}, "huge"),
    ({"sets": ["world_model.lrr=1"]}, "world_model.lrr"),
    ({"sets": ["trainer.steps=1"]}, "trainer"),
    ({"sets": ["train.steps"]}, "key=value"),
    ({"sets": ["train.steps=abc"]}, "train.steps"),
    ({"sets": ["train.deterministic=maybe"]}, "boolean"),
    ({"sets": ["replay.sampling=prioritised"]}, "prioritised"),
    ({"device": "tpu"}, "tpu"),
])
def test_bad_input_is_an_error_naming_it(kwargs, needle):
    args = {"game": "Pong", "seed": 0, "variant": "drama", "preset": "debug", **kwargs}
    with pytest.raises(ValueError, match=needle):
        resolve_config(**args)


def test_round_trip_through_yaml(tmp_path):
    cfg = resolve_config("Pong", 3, "transformer", "debug", ["world_model.lr=2e-4"])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    assert config_from_dict(yaml.safe_load(path.read_text())) == cfg


def test_unknown_key_in_presets_file_is_an_error(tmp_path):
    data = yaml.safe_load(PRESETS_PATH.read_text())
    data["presets"]["debug"]["actor_critic"]["hidden_size"] = 3
    bad = tmp_path / "presets.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="actor_critic.hidden_size"):
        resolve_config("Pong", 0, "drama", "debug", presets_path=bad)


def test_official_acting_by_default_and_the_corrected_variant():
    """The published algorithm is the default; `corrected` turns on each of our switches."""
    from drama.config import resolve_config

    for preset in ("atari100k", "debug"):
        cfg = resolve_config("Pong", 0, "drama", preset)
        ac = cfg.actor_critic
        assert (ac.acting, ac.acting_context, ac.imag_start, ac.return_form) == (
            "context", 16, "prior", "official")
        assert cfg.replay.cross_episodes is True
        cor = resolve_config("Pong", 0, "corrected", preset)
        ac = cor.actor_critic
        assert (ac.acting, ac.imag_start, ac.return_form) == ("recurrent", "posterior",
                                                              "dreamerv3")
        assert cor.replay.cross_episodes is False and cor.replay.sampling == "dfs"
        assert cor.world_model == cfg.world_model
    # each switch alone, and a bad value named
    one = resolve_config("Pong", 0, "drama", "debug", ["actor_critic.return_form=dreamerv3"])
    assert one.actor_critic.return_form == "dreamerv3" and one.actor_critic.acting == "context"
    with pytest.raises(ValueError, match="imag_start"):
        resolve_config("Pong", 0, "drama", "debug", ["actor_critic.imag_start=middle"])
