"""Presets, variants and --set overrides."""

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from drama.agent import ActorCriticConfig
from drama.config import (PRESETS_PATH, TrainConfig, config_from_dict, load_presets,
                          resolve_config)
from drama.replay import ReplayConfig
from drama.world_model import WorldModelConfig


def test_atari100k_preset_is_the_paper():
    cfg = resolve_config("Pong", 0, "drama", "atari100k")
    # the dataclass defaults are the YAML's (= official code)
    assert cfg.world_model == WorldModelConfig()
    assert cfg.replay == ReplayConfig(img_count_scale=64.0)  # derived: 1024 / 16
    assert cfg.actor_critic == ActorCriticConfig()
    assert cfg.train == TrainConfig()
    ac, t, r, w = cfg.actor_critic, cfg.train, cfg.replay, cfg.world_model
    assert (ac.gamma, ac.lam, ac.entropy_coef, ac.lr, ac.eps, ac.grad_clip) == \
        (0.985, 0.95, 3e-4, 4e-5, 1e-20, 100.0)
    assert (ac.imag_batch, ac.imag_context, ac.imag_horizon, ac.slow_critic_decay) == \
        (1024, 8, 16, 0.98)
    assert (t.steps, t.wm_batch, t.wm_seq_len, t.eval_every, t.eval_episodes,
            t.final_eval_episodes) == (100_000, 16, 128, 10_000, 10, 100)
    assert (r.warmup, r.capacity, r.sampling) == (1032, 100_000, "dfs")
    assert (w.sequence_kind, w.d_model, w.lr, w.weight_decay) == ("mamba2", 512, 4e-5, 1e-4)


def test_presets_yaml_defaults_list_every_field():
    data = load_presets()
    for section, cls in (("world_model", WorldModelConfig), ("replay", ReplayConfig),
                         ("actor_critic", ActorCriticConfig), ("train", TrainConfig)):
        fields = {f.name for f in dataclasses.fields(cls)} - {"img_count_scale"}  # derived
        assert set(data["defaults"][section]) == fields, section


def test_defaults_exist_once_in_presets_yaml():
    """The dataclasses take their defaults from presets.yaml: their source has none."""
    import inspect
    import re

    for cls in (WorldModelConfig, ReplayConfig, ActorCriticConfig, TrainConfig):
        src = inspect.getsource(cls)
        assert not re.search(r"^    \w+: [^\n=]+ = ", src, re.M), cls.__name__
    # editing the YAML's default changes the dataclass's (one copy): a copy of the file with
    # another value, read by a fresh interpreter
    import subprocess
    import sys
    code = ("import drama.settings as s, pathlib, sys; s.PRESETS_PATH = pathlib.Path(sys.argv[1])"
            "\nfrom drama.world_model import WorldModelConfig; print(WorldModelConfig().d_model)")
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        text = PRESETS_PATH.read_text().replace("d_model: 512 ", "d_model: 384 ", 1)
        (Path(d) / "presets.yaml").write_text(text)
        out = subprocess.run([sys.executable, "-c", code, str(Path(d) / "presets.yaml")],
                             capture_output=True, text=True, check=True).stdout
    assert out.strip() == "384"


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
