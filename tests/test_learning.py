"""The CPU learning check's parts: the random policy under the agent's protocol (real ALE) and
the agent-vs-random statistics, table and figure (analysis.learning)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.learning import (
    learning_frame,
    load_episodes,
    plot_learning_curves,
    verdict,
    write_learning_table,
)
from drama.random_policy import main as random_main
from drama.random_policy import random_episodes
from drama.run_io import EVAL_COLUMNS


def episodes(game, variant, seed, step, returns, final):
    return pd.DataFrame([{"game": game, "variant": variant, "seed": seed, "env_step": step,
                          "episode": i, "return": float(r), "length": 100, "final": final}
                         for i, r in enumerate(returns)], columns=EVAL_COLUMNS)


@pytest.fixture
def agent_and_random():
    agent = pd.concat([
        episodes("Boxing", "drama", 0, 500, [-5, 0], False),
        episodes("Boxing", "drama", 0, 1000, [10, 12, 14, 16], True),
        episodes("Boxing", "drama", 1, 500, [1, 3], False),
        episodes("Boxing", "drama", 1, 1000, [6, 8, 9, 13], True),
        episodes("Boxing", "uniform", 0, 1000, [99, 99, 99, 99], True),  # another variant
        episodes("Krull", "drama", 0, 1000, [1000, 1500, 1200, 900], True),
        episodes("Krull", "drama", 1, 1000, [1100, 1600, 1300, 1000], True),
    ], ignore_index=True)
    random = pd.concat([episodes("Boxing", "random", 0, 0, [-3, 2, 0, -1, 4, -6], True),
                        episodes("Krull", "random", 0, 0, [1700, 900, 2400, 1500], True)],
                       ignore_index=True)
    return agent, random


def test_learning_statistics_match_a_direct_computation(agent_and_random):
    agent, random = agent_and_random
    frame = learning_frame(agent, random, games=["Boxing", "Krull"]).set_index("game")
    a = np.array([10, 12, 14, 16, 6, 8, 9, 13], float)  # Boxing drama finals only
    r = np.array([-3, 2, 0, -1, 4, -6], float)
    se_a, se_r = a.std(ddof=1) / np.sqrt(8), r.std(ddof=1) / np.sqrt(6)
    box = frame.loc["Boxing"]
    assert box["seed_scores"] == {0: 13.0, 1: 9.0}
    assert box["agent_mean"] == pytest.approx(a.mean()) and box["agent_se"] == pytest.approx(se_a)
    assert box["random_mean"] == pytest.approx(r.mean())
    assert box["random_se"] == pytest.approx(se_r)
    z = (a.mean() - r.mean()) / np.sqrt(se_a ** 2 + se_r ** 2)
    assert box["z"] == pytest.approx(z) and z > 3 and box["verdict"] == "learned"
    assert (box["agent_episodes"], box["random_episodes"]) == (8, 6)
    assert frame.loc["Krull", "verdict"] == "not separable"
    assert (frame["policy"] == "greedy").all()
    # sampled-action evaluations (drama.evaluate_run) give a second row per game
    sampled = pd.concat([episodes("Boxing", "drama", 0, 1000, [1, -1], True),
                         episodes("Boxing", "drama", 1, 1000, [0, 2], True)], ignore_index=True)
    both = learning_frame(agent, random, games=["Boxing"], sampled=sampled)
    assert list(both["policy"]) == ["greedy", "sampled"]
    row = both.iloc[1]
    assert row["seed_scores"] == {0: 0.0, 1: 1.0} and row["agent_mean"] == pytest.approx(0.5)
    assert row["agent_episodes"] == 4 and row["verdict"] == "not separable"
    assert [verdict(v) for v in (3.0, 2.9, -2.9, -3.0, float("nan"))] == [
        "learned", "not separable", "not separable", "below random", "n/a"]


def test_learning_frame_names_what_is_missing(agent_and_random):
    agent, random = agent_and_random
    with pytest.raises(ValueError, match="no random-policy episodes for Krull"):
        learning_frame(agent, random[random["game"] == "Boxing"], games=["Boxing", "Krull"])
    with pytest.raises(ValueError, match="variant 'gru' on Boxing"):
        learning_frame(agent, random, variant="gru", games=["Boxing"])


def test_learning_table_and_curves_are_written(agent_and_random, tmp_path):
    agent, random = agent_and_random
    paths = []
    for name, df in (("agent", agent), ("random", random)):
        paths.append(tmp_path / f"{name}.parquet")
        df.to_parquet(paths[-1])
    agent, random = load_episodes(paths[:1]), load_episodes(paths[1:])
    frame = learning_frame(agent, random)
    write_learning_table(frame, tmp_path / "t.md", tmp_path / "t.csv", tmp_path / "t.html",
                         steps=1000)
    md = (tmp_path / "t.md").read_text()
    assert "seed 0" in md and "seed 1" in md and "learned" in md and "1,000 agent steps" in md
    csv = pd.read_csv(tmp_path / "t.csv").set_index("game")
    assert csv.loc["Boxing", "seed_0"] == 13.0 and csv.loc["Krull", "seed_1"] == 1250.0
    assert "<table>" in (tmp_path / "t.html").read_text()
    plot_learning_curves(agent, random, tmp_path / "curves.png",
                         sampled=agent[agent["final"] & (agent["variant"] == "drama")])
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    assert (tmp_path / "curves.pdf").stat().st_size > 0
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"game": ["Boxing"]}).to_parquet(bad)
    with pytest.raises(ValueError, match="bad.parquet: not an episode table"):
        load_episodes([bad])


def test_random_policy_on_real_atari_is_seeded(tmp_path, capsys):
    first = random_episodes("Pong", 1, seed=0, preset="debug")
    assert list(first.columns) == EVAL_COLUMNS and len(first) == 1
    assert (first["variant"] == "random").all() and first["final"].all()
    assert -21 <= first["return"].iloc[0] <= 21 and first["length"].iloc[0] > 100
    pd.testing.assert_frame_equal(random_episodes("Pong", 1, seed=0, preset="debug"), first)
    other = random_episodes("Pong", 1, seed=1, preset="debug")
    assert other["length"].iloc[0] != first["length"].iloc[0]
    # the CLI: a clear error and nothing written for an unknown game or setting
    out = tmp_path / "r.parquet"
    assert random_main(["--game", "Pnog", "--episodes", "1", "--out", str(out)]) == 2
    assert "unknown game 'Pnog'" in capsys.readouterr().err and not out.exists()
    assert random_main(["--game", "Pong", "--episodes", "1", "--out", str(out),
                        "--set", "env.no_such_key=1"]) == 2
    assert "no_such_key" in capsys.readouterr().err and not out.exists()
    assert random_main(["--game", "Pong", "--episodes", "0", "--out", str(out)]) == 2
    assert not out.exists()
