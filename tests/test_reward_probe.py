"""tools/investigations/reward_probe.py: the reward-target shift and a tiny run on Boxing."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "tools" / "investigations" / "reward_probe.py"


def _load():
    spec = importlib.util.spec_from_file_location("reward_probe", PROBE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_previous_rewards_shift_by_one_and_restart_at_episode_starts():
    r = np.array([1.0, 0.0, 2.0, 5.0, 3.0])
    first = np.array([True, False, False, True, False])
    np.testing.assert_array_equal(_load().previous_rewards(r, first), [0.0, 1.0, 0.0, 0.0, 5.0])


def test_probe_runs_on_a_real_game_and_prints_its_scores():
    for target in ("before", "after"):
        res = subprocess.run(
            [sys.executable, str(PROBE), "--game", "Boxing", "--preset", "debug", "--steps", "300",
             "--heldout", "64", "--updates", "3", "--every", "2", "--target", target],
            capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert res.returncode == 0, res.stderr[-2000:]
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("update")]
        assert [int(ln.split()[1]) for ln in lines] == [2, 3], res.stdout
        assert f"target {target}" in res.stdout
        assert all(re.search(r"rew \d+\.\d+ rec \d+\.\d+", ln) for ln in lines), lines


def test_transitions_never_cross_an_episode_start():
    first = np.array([True, False, False, True, False, True])
    idx = _load().transition_index({"action": np.zeros(6), "is_first": first})
    np.testing.assert_array_equal(idx, [0, 1, 3])  # 2->3 and 4->5 start new episodes


def test_mode_latents_are_the_one_hot_argmax_of_each_categorical():
    import torch

    logits = torch.log_softmax(torch.tensor([[[0.1, 2.0, 0.3], [5.0, 0.0, 0.0]]]), -1)
    z = _load().mode_latents(logits)
    assert z.tolist() == [[0.0, 1.0, 0.0, 1.0, 0.0, 0.0]]


def test_supervised_control_mode_latents_and_readouts_run_on_a_real_game():
    for extra in (["--model", "supervised"], ["--latents", "mode", "--readout", "1"]):
        res = subprocess.run(
            [sys.executable, str(PROBE), "--game", "Boxing", "--preset", "debug", "--steps", "300",
             "--heldout", "64", "--updates", "2", "--every", "2", *extra],
            capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert res.returncode == 0, res.stderr[-2000:]
        assert f"{extra[0][2:]} {extra[1]}" in res.stdout, res.stdout
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("update")]
        assert len(lines) == 1 and re.search(r"corr [-+]\d\.\d{3}|corr -", lines[0]), lines
        readouts = [ln for ln in res.stdout.splitlines() if ln.startswith("readout on")]
        assert len(readouts) == (2 if "--readout" in extra else 0), res.stdout


def test_readout_head_learns_a_reward_that_its_features_carry_and_not_one_they_do_not():
    import torch

    from drama.config import resolve_config

    cfg = resolve_config("Boxing", 0, "drama", "debug", [], device="cpu").world_model
    g = torch.Generator().manual_seed(0)
    x, x_test = torch.randn(2000, 8, generator=g), torch.randn(500, 8, generator=g)
    y, y_test = 10.0 * (x[:, 0] > 1.0), 10.0 * (x_test[:, 0] > 1.0).numpy()
    fit = _load().fit_readout
    assert fit(x, y, x_test, y_test, cfg, epochs=20, seed=0)["corr"] > 0.8
    noise = torch.randn(2000, 8, generator=g)  # the reward is not in these features
    assert abs(fit(noise, y, x_test, y_test, cfg, epochs=20, seed=0)["corr"]) < 0.2


def test_world_model_options_with_the_supervised_control_are_an_error():
    for extra in (["--target", "after"], ["--latents", "mode"], ["--readout", "3"]):
        res = subprocess.run([sys.executable, str(PROBE), "--model", "supervised", *extra],
                             capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert res.returncode == 2 and extra[0] in res.stderr, res.stderr[-2000:]
