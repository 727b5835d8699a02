"""The Atari100k environment protocol on real ALE ROMs."""

import numpy as np
import pytest

from drama.envs import ATARI100K_GAMES, PROTOCOL_KEYS, atari_protocol, make_env, make_vector_env


def _rollout(env, actions):
    obs, _ = env.reset()
    frames, rewards, flags = [obs], [], []
    for a in actions:
        obs, r, term, trunc, info = env.step(int(a))
        frames.append(obs)
        rewards.append(r)
        flags.append((term, trunc, info["life_loss"]))
        if term or trunc:
            break
    return np.stack(frames), rewards, flags


def test_observation_space_and_protocol():
    env = make_env("Breakout", seed=0)
    obs, info = env.reset()
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert env.observation_space.shape == (64, 64, 3)
    assert env.action_space.n == 4  # minimal action set
    assert info["life_loss"] is False and info["lives"] == 5
    p = env.protocol
    assert p["env_id"] == "ALE/Breakout-v5"
    assert p["action_repeat"] == 4 and p["repeat_action_probability"] == 0.0
    assert p["max_episode_frames"] == 108_000 and p["noop_max"] == 0 and p["reward_clip"] is False
    assert set(PROTOCOL_KEYS) <= set(p)
    obs, r, term, trunc, info = env.step(1)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8 and isinstance(r, float)
    assert info["frames"] == 4


def test_all_26_games_build_from_shipped_roms():
    assert len(ATARI100K_GAMES) == 26 and len(set(ATARI100K_GAMES)) == 26
    for game in ATARI100K_GAMES:
        env = make_env(game, seed=0)
        obs, _ = env.reset()
        assert obs.shape == (64, 64, 3), game
        env.close()


def test_life_loss_flag_without_reset():
    env = make_env("Breakout", seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    lives_seen, steps_after_loss = [], 0
    for _ in range(2000):
        obs, r, term, trunc, info = env.step(int(rng.integers(4)))
        if lives_seen:
            steps_after_loss += 1
        if info["life_loss"]:
            assert not term, "first life loss must not end the episode"
            lives_seen.append(info["lives"])
        if len(lives_seen) >= 1 and steps_after_loss >= 5:
            break
    assert lives_seen and lives_seen[0] == 4, lives_seen
    assert steps_after_loss >= 5  # the episode went on after the life loss, no reset


def test_repeat_stops_early_on_life_loss():
    """With the official break, a life-loss step spans fewer frames than a full repeat at least
    once in a Breakout episode; without it, every step is exactly 4 frames."""
    rng = np.random.default_rng(1)
    actions = rng.integers(4, size=3000)
    counts = {}
    for brk in (True, False):
        env = make_env("Breakout", seed=3, break_repeat_on_life_loss=brk)
        env.reset()
        prev, spans = 0, []
        for a in actions:
            _, _, term, trunc, info = env.step(int(a))
            spans.append((info["frames"] - prev, info["life_loss"]))
            prev = info["frames"]
            if term or trunc:
                break
        counts[brk] = [s for s, lost in spans if lost]
    assert any(s < 4 for s in counts[True]), counts[True]
    assert all(s == 4 for s in counts[False][:-1]), counts[False]


def test_truncation_at_frame_cap():
    env = make_env("Pong", seed=0, max_episode_frames=400)
    env.reset()
    for step in range(1, 200):  # noqa: B007 (step is read after the loop)
        _, _, term, trunc, info = env.step(0)
        if term or trunc:
            break
    assert trunc and not term and step == 100 and info["frames"] == 400
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_same_seed_same_actions_identical_trajectory():
    actions = np.random.default_rng(5).integers(6, size=300)
    a = _rollout(make_env("Pong", seed=7), actions)
    b = _rollout(make_env("Pong", seed=7), actions)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1] and a[2] == b[2]
    # later episodes continue the seeded stream identically too
    env1, env2 = make_env("Breakout", seed=11), make_env("Breakout", seed=11)
    acts = np.random.default_rng(2).integers(4, size=3000)
    for _ in range(2):
        x, y = _rollout(env1, acts), _rollout(env2, acts)
        np.testing.assert_array_equal(x[0], y[0])


def test_unknown_game_lists_valid_names():
    with pytest.raises(ValueError, match="unknown game 'Pongg'.*Alien.*UpNDown"):
        make_env("Pongg", seed=0)


def test_bad_protocol_key_is_named():
    with pytest.raises(ValueError, match="sticky_actions"):
        make_env("Pong", seed=0, sticky_actions=True)
    with pytest.raises(ValueError, match="sticky_actions"):
        atari_protocol(sticky_actions=0.25)
    with pytest.raises(ValueError, match="num_envs"):
        make_vector_env("Pong", 0, 0)


def test_vector_env_matches_make_env():
    actions = np.random.default_rng(0).integers(4, size=(150, 3))
    venv = make_vector_env("Breakout", seed=10, num_envs=3)
    obs, _ = venv.reset()
    assert obs.shape == (3, 64, 64, 3) and obs.dtype == np.uint8
    traj = [obs]
    for a in actions:
        obs, r, term, trunc, info = venv.step(a)
        traj.append(obs)
    traj = np.stack(traj)  # (T+1, 3, 64, 64, 3)
    for i in range(3):
        env = make_env("Breakout", seed=10 + i)
        single = [env.reset()[0]]
        for a in actions[:, i]:
            o, _, term, trunc, _ = env.step(int(a))
            single.append(o)
            if term or trunc:
                break
        n = len(single)
        np.testing.assert_array_equal(traj[:n, i], np.stack(single))


def test_game_set_identical_to_random_human_table():
    from pathlib import Path

    import pandas as pd

    table = Path(__file__).resolve().parents[1] / "analysis" / "data" / "atari100k_random_human.csv"
    games = pd.read_csv(table)["game"].tolist()
    assert sorted(games) == sorted(ATARI100K_GAMES)
