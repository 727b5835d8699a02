"""drama.diagnose on a short real Boxing run: every field present, finite and in range; a
corrupt or missing file is a clear error naming it; the return helpers match the agent's
lambda-return."""

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from drama.agent import lambda_return
from drama.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from drama.diagnose import (discounted_return, imagination_report, load_run, main,
                            matched_return, world_model_report)
from drama.train import main as train_main

WM_KEYS = {"windows", "window_len", "steps", "replay_size", "real_reward_mean",
           "pred_reward_mean", "reward_corr", "rewarded_steps", "rewarded_frac",
           "pred_rewarded_frac", "abs_err_rewarded", "abs_err_unrewarded", "sign_hit_rewarded",
           "pred_abs_rewarded", "pred_abs_unrewarded",
           "terminal_steps", "pred_terminal_frac", "term_accuracy", "term_recall",
           "term_precision"}
IMAG_KEYS = {"starts", "horizon", "states", "imag_start", "return_form", "reward_mean",
             "reward_abs_mean", "pred_rewarded_frac", "cont_mean", "return_mean", "value_mean",
             "value_s0_mean", "return_scale", "return_range_batch", "advantage_abs",
             "advantage_abs_unscaled", "entropy", "entropy_max", "entropy_coef",
             "max_prob_mean", "prob_sum_max_dev", "grad_norm_policy", "grad_norm_entropy",
             "greedy_hist", "sampled_hist"}
REAL_KEYS = {"greedy", "episodes", "steps", "max_steps", "return_mean", "reward_mean",
             "rewarded_frac", "value_steps", "actor_exposes_features", "value_mean",
             "disc_return_mean", "matched_return_mean", "value_return_corr", "value_abs_err",
             "entropy", "max_prob_mean", "action_hist"}
TOP_KEYS = {"run_dir", "game", "variant", "preset", "run_seed", "diagnose_seed", "env_step",
            "updates", "num_actions", "action_names", "settings", "world_model",
            "imagination", "real"}


@pytest.fixture(scope="module")
def boxing_run(tmp_path_factory):
    """150 env steps of the debug preset on real Boxing (90 updates); 200-step episodes."""
    out = tmp_path_factory.mktemp("diag") / "boxing"
    code = train_main(["--game", "Boxing", "--seed", "0", "--variant", "drama", "--preset",
                       "debug", "--steps", "150", "--device", "cpu", "--out", str(out),
                       "--set", "replay.warmup=60", "--set", "train.eval_every=0",
                       "--set", "train.final_eval_episodes=1", "--set",
                       "train.torch_threads=2", "--set", "train.checkpoint_every=50",
                       "--set", "env.max_episode_frames=800",
                       "--set", "train.keep_replay=true"])
    assert code == 0
    return out


def _numbers(obj, path=""):
    """(path, value) of every number (and None) in a nested report."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{path}[{i}]")
    elif obj is None or (isinstance(obj, (int, float)) and not isinstance(obj, bool)):
        yield path, obj


@pytest.mark.slow
def test_diagnose_real_boxing_run(boxing_run, tmp_path, capsys):
    out_json = tmp_path / "diag.json"
    code = main([str(boxing_run), "--episodes", "2", "--max-steps", "120", "--windows", "16",
                 "--imag-starts", "48", "--json", str(out_json)])
    printed = capsys.readouterr().out
    assert code == 0
    for title in ("1. world model", "2. imagination", "3a. real game, sampled",
                  "3b. real game, greedy", "|G - V| / max(1, S)", "corr(predicted, real reward)"):
        assert title in printed
    r = json.loads(out_json.read_text())
    assert set(r) == TOP_KEYS
    assert r["game"] == "Boxing" and r["env_step"] == 150 and r["num_actions"] == 18
    assert r["updates"] == {"world_model": 90, "actor_critic": 90}
    assert r["action_names"][0] == "NOOP" and len(r["action_names"]) == 18
    wm, im = r["world_model"], r["imagination"]
    assert set(wm) == WM_KEYS and set(im) == IMAG_KEYS
    assert set(r["real"]) == {"sampled", "greedy"}
    for rr in r["real"].values():
        assert set(rr) == REAL_KEYS

    # every number is finite; None only where its quantity is undefined
    allowed_none = set()
    if wm["rewarded_steps"] == 0:
        allowed_none |= {".world_model.abs_err_rewarded", ".world_model.sign_hit_rewarded",
                         ".world_model.pred_abs_rewarded", ".world_model.reward_corr"}
    if wm["terminal_steps"] == 0:
        allowed_none.add(".world_model.term_recall")
    if wm["pred_terminal_frac"] == 0:
        allowed_none.add(".world_model.term_precision")
    for path, v in _numbers(r):
        if v is None:
            # a correlation is undefined when one side is constant (e.g. no reward in a window)
            assert path in allowed_none or path.endswith("_corr"), path
        else:
            assert math.isfinite(v), (path, v)

    # 1. world model: 16 windows of wm_seq_len (16) from the 150-step replay
    assert wm["windows"] == 16 and wm["window_len"] == 16 and wm["steps"] == 256
    assert wm["replay_size"] == 150
    assert wm["rewarded_steps"] == round(wm["rewarded_frac"] * wm["steps"])
    for k in ("rewarded_frac", "pred_rewarded_frac", "term_accuracy", "pred_terminal_frac"):
        assert 0.0 <= wm[k] <= 1.0, k
    assert wm["abs_err_unrewarded"] >= 0.0 and wm["pred_abs_unrewarded"] >= 0.0
    assert wm["reward_corr"] is None or -1.0 <= wm["reward_corr"] <= 1.0

    # 2. imagination: 48 starts x imag_horizon (8) states
    assert im["starts"] == 48 and im["horizon"] == 8 and im["states"] == 384
    assert im["imag_start"] == "prior" and im["return_form"] == "official"
    assert im["entropy_max"] == pytest.approx(math.log(18))
    assert 0.0 <= im["entropy"] <= im["entropy_max"] + 1e-5
    assert 1.0 / 18 - 1e-6 <= im["max_prob_mean"] <= 1.0
    assert im["prob_sum_max_dev"] < 1e-4  # probabilities sum to 1
    assert im["return_scale"] >= 1.0 and im["return_range_batch"] >= 0.0
    assert im["advantage_abs"] >= 0.0
    assert im["advantage_abs"] == pytest.approx(im["advantage_abs_unscaled"] / im["return_scale"],
                                                rel=1e-4)
    assert 0.0 <= im["cont_mean"] <= 1.0 and 0.0 <= im["pred_rewarded_frac"] <= 1.0
    assert im["grad_norm_policy"] >= 0.0 and im["grad_norm_entropy"] > 0.0
    for h in ("greedy_hist", "sampled_hist"):
        assert len(im[h]) == 18 and sum(im[h]) == im["states"] and min(im[h]) >= 0

    # 3. the real game: 2 episodes per mode, capped at 120 steps (Boxing lasts ~1,780)
    for mode, rr in r["real"].items():
        assert rr["greedy"] == (mode == "greedy")
        assert len(rr["episodes"]) == 2
        assert all(e["length"] == 120 and e["capped"] for e in rr["episodes"])
        assert rr["steps"] == 240 and sum(rr["action_hist"]) == 240
        assert len(rr["action_hist"]) == 18
        # the context actor's first action of an episode is random: no features, no value
        assert rr["actor_exposes_features"] and rr["value_steps"] == 240 - 2
        assert rr["reward_mean"] * rr["steps"] == pytest.approx(
            sum(e["return"] for e in rr["episodes"]))
        assert rr["return_mean"] == pytest.approx(np.mean([e["return"] for e in rr["episodes"]]))
        assert 0.0 <= rr["entropy"] <= math.log(18) + 1e-5
        assert 1.0 / 18 - 1e-6 <= rr["max_prob_mean"] <= 1.0
        assert 0.0 <= rr["rewarded_frac"] <= 1.0 and rr["value_abs_err"] >= 0.0
        # Boxing rewards are -1..+1 per punch (a few per step at most)
        assert abs(rr["disc_return_mean"]) <= 1 / (1 - 0.985) * 2
    # greedy play on one state's features is deterministic, so at most the random first
    # actions differ from the greedy choices in a near-uniform policy; sampled is spread out
    assert max(r["real"]["sampled"]["action_hist"]) < 240


@pytest.mark.slow
def test_diagnosis_changes_nothing(boxing_run):
    """The replay's DFS counters and the run directory are left as they were."""
    before = {p.name: p.read_bytes() for p in boxing_run.iterdir()}
    run = load_run(boxing_run)
    counts = run.replay.wm_count.clone(), run.replay.img_count.clone()
    assert counts[0].sum() > 0 and counts[1].sum() > 0  # 90 updates drew starts
    world_model_report(run, 8, seed=0)
    imagination_report(run, 40, seed=0)  # two draws of imag_batch (32)
    assert torch.equal(run.replay.wm_count, counts[0])
    assert torch.equal(run.replay.img_count, counts[1])
    assert {p.name: p.read_bytes() for p in boxing_run.iterdir()} == before


@pytest.mark.slow
def test_missing_or_corrupt_files_are_clear_errors(boxing_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(boxing_run, run)
    ck = run / CHECKPOINT_NAME
    # a finished run's checkpoint without its replay (train.keep_replay=false) is named as such
    from drama.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(ck)
    del state["replay"]
    save_checkpoint(ck, state)
    assert main([str(run)]) == 2
    assert "keep_replay" in capsys.readouterr().err
    shutil.copy2(boxing_run / CHECKPOINT_NAME, ck)
    data = ck.read_bytes()
    ck.write_bytes(data[: len(data) // 2])  # truncated
    out_json = tmp_path / "d.json"
    assert main([str(run), "--episodes", "0", "--json", str(out_json)]) == 2
    err = capsys.readouterr().err
    assert str(ck) in err and "corrupt" in err and not out_json.exists()
    ck.write_bytes(b"not a checkpoint")
    assert main([str(run)]) == 2
    err = capsys.readouterr().err
    assert str(ck) in err and "corrupt" in err
    ck.unlink()
    assert main([str(run)]) == 2
    err = capsys.readouterr().err
    assert str(ck) in err and "missing" in err
    (run / "config.yaml").unlink()
    assert main([str(run)]) == 2
    assert str(run / "config.yaml") in capsys.readouterr().err
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # a checkpoint from a different config is named as such
    other = tmp_path / "other"
    shutil.copytree(boxing_run, other)
    cfg = (other / "config.yaml").read_text().replace("gamma: 0.985", "gamma: 0.99")
    (other / "config.yaml").write_text(cfg)
    assert main([str(other)]) == 2
    err = capsys.readouterr().err
    assert "disagree" in err and "gamma" in err


def test_discounted_and_matched_returns():
    r = [1.0, 0.0, 0.0, 2.0]
    assert discounted_return(r, 0.5).tolist() == [1.25, 0.5, 1.0, 2.0]
    assert discounted_return([], 0.9).size == 0
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=40) * (rng.random(40) < 0.3)
    terminal = rng.random(40) < 0.1
    gamma, lam = 0.985, 0.95
    for form in ("dreamerv3", "official"):
        v = matched_return(rewards, terminal, gamma, lam, form)
        # the fixed point: the agent's own lambda-return with V = v (and 0 after the end)
        # reproduces v, with the rewards/continuations indexed as ``form`` indexes them
        if form == "dreamerv3":
            rew, cont = rewards, 1.0 - terminal
        else:
            rew = np.concatenate([[0.0], rewards[:-1]])
            cont = np.concatenate([[1.0], 1.0 - terminal[:-1]])
        value = torch.tensor(np.concatenate([v, [0.0]]))[None]
        g = lambda_return(torch.tensor(rew)[None], torch.tensor(cont, dtype=torch.float64)[None],
                          value, gamma, lam, form)[0].numpy()
        np.testing.assert_allclose(g, v, rtol=1e-10, atol=1e-10)
    # without terminations, dreamerv3's fixed point is the discounted return
    np.testing.assert_allclose(matched_return(rewards, np.zeros(40, bool), gamma, lam,
                                              "dreamerv3"), discounted_return(rewards, gamma))
    with pytest.raises(ValueError, match="unknown return form"):
        matched_return(rewards, terminal, gamma, lam, "bogus")


@pytest.mark.slow
def test_evaluate_run_replays_the_final_evaluation_and_samples(boxing_run, tmp_path, capsys):
    """drama.evaluate_run: greedy on the final evaluation's seeds is the run's own final
    evaluation, bit for bit; sampled is its own (seeded) stream; a finished checkpoint without
    its replay is fine; bad input is exit code 2 with nothing written."""
    from drama.evaluate_run import evaluate_run
    from drama.evaluate_run import main as evaluate_main

    run = tmp_path / "run"
    shutil.copytree(boxing_run, run)
    ck = load_checkpoint(run / CHECKPOINT_NAME)
    del ck["replay"]  # as a finished run keeps it (train.keep_replay=false)
    save_checkpoint(run / CHECKPOINT_NAME, ck)
    own = pd.read_parquet(run / "eval.parquet")
    own = own[own["final"]].reset_index(drop=True)
    greedy = evaluate_run(run, len(own), "greedy")
    pd.testing.assert_frame_equal(greedy.drop(columns="policy"), own)
    sampled = evaluate_run(run, 2, "sampled")
    assert (sampled["policy"] == "sampled").all() and len(sampled) == 2
    assert (sampled["env_step"] == 150).all() and sampled["final"].all()
    pd.testing.assert_frame_equal(evaluate_run(run, 2, "sampled"), sampled)
    out = tmp_path / "e.parquet"
    assert evaluate_main([str(run), "--episodes", "2", "--out", str(out)]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), sampled)
    for argv, msg in (([str(tmp_path / "nope")], "does not exist"),
                      ([str(run), "--policy", "argmax"], "--policy must be one of"),
                      ([str(run), "--episodes", "0"], "--episodes must be >= 1")):
        bad = tmp_path / "bad.parquet"
        assert evaluate_main([*argv, "--out", str(bad)]) == 2
        assert msg in capsys.readouterr().err and not bad.exists()
