"""Score loading and human normalisation (analysis/scores.py) on the shipped published data."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from analysis import scores as S


def test_table_has_26_games_and_agrees_with_official_drama_csv():
    assert len(S.ATARI100K_GAMES) == 26
    assert list(S.ATARI100K_GAMES) == sorted(S.ATARI100K_GAMES, key=str.lower)
    # the official Drama repo's csv rounds the same table to integers: an independent check
    wide = pd.read_csv(S.published_path("drama_atari_performance.csv")).set_index("Task")
    for g in S.ATARI100K_GAMES:
        assert abs(S.RANDOM_SCORES[g] - float(wide.loc["Random", g])) <= 0.51, g
        assert abs(S.HUMAN_SCORES[g] - float(wide.loc["Human", g])) <= 0.51, g


@pytest.mark.parametrize("name", ["MsPacman", "ms_pacman", "ALE/MsPacman-v5",
                                  "MsPacmanNoFrameskip-v4", "atari_ms_pacman", "mspacman"])
def test_canonical_game_spellings(name):
    assert S.canonical_game(name) == "MsPacman"


def test_unknown_game_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown Atari100k game 'Tetris'"):
        S.canonical_game("Tetris")


def test_published_json_and_normalisation():
    df = S.load_scores(S.published_path("DIAMOND"))
    assert set(df["method"]) == {"DIAMOND"}
    assert df.groupby("game").size().eq(5).all() and df["game"].nunique() == 26
    hns = S.human_normalise(df)
    pong = hns[hns["game"] == "Pong"]
    np.testing.assert_allclose(pong["hns"], (pong["score"] + 20.7) / (14.6 + 20.7))


def test_curl_records_round_trip_to_their_hns():
    path = S.published_path("CURL_10_evals")
    recs = pd.DataFrame(json.loads(path.read_text()))
    df = S.human_normalise(S.load_scores(path))
    assert df.groupby("game").size().eq(100).all()
    merged = df.merge(recs.assign(run=recs["seed"].astype(int)), on=["game", "run"])
    assert len(merged) == len(df)
    np.testing.assert_allclose(merged["hns"], merged["HNS"], rtol=1e-9, atol=1e-12)


def test_dreamerv3_window_rule_on_hand_made_records(tmp_path):
    recs = [
        # episodes end at 389,999 (out), 390,000 (in), 400,000 (in), 400,001 (out)
        {"task": "atari_pong", "method": "dreamerv3", "seed": 0,
         "xs": [100, 389_999, 390_000, 400_000, 400_001], "ys": [-21, 1.0, 3.0, 5.0, 100.0]},
        {"task": "atari_pong", "method": "dreamerv3", "seed": 1,  # nothing in window: dropped
         "xs": [100, 389_000], "ys": [-21, 7.0]},
        {"task": "atari_up_n_down", "method": "dreamerv3", "seed": 3,
         "xs": [395_000], "ys": [1234.0]},
    ]
    path = tmp_path / "DV3.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump(recs, f)
    df = S.load_scores(path)
    assert set(df["method"]) == {"DV3"}
    assert df[["game", "run", "score"]].values.tolist() == [["Pong", 0, 4.0],
                                                            ["UpNDown", 3, 1234.0]]


def test_dreamerv3_real_curves_drop_seeds():
    df = S.load_scores(S.published_path("DreamerV3-2024-curves"))
    runs = df.groupby("game").size()
    assert runs.shape == (26,)
    assert runs["UpNDown"] == 1 and runs["Pong"] == 4 and runs.max() == 5
    assert 0 not in set(df[df["game"] == "Pong"]["run"])  # seed 0's last episode ends <390k


def test_project_parquet_ignores_provenance_and_checks_columns(tmp_path):
    p = tmp_path / "scores.parquet"
    pd.DataFrame({"game": ["Pong", "Pong"], "variant": ["drama", "drama"], "seed": [0, 1],
                  "score": [1.0, 3.0], "git_commit": ["abc", "abc"]}).to_parquet(p)
    df = S.load_scores(p)
    assert list(df.columns) == S.COLUMNS and df["score"].tolist() == [1.0, 3.0]
    pd.DataFrame({"game": ["Pong"], "seed": [0], "score": [1.0]}).to_parquet(p)
    with pytest.raises(ValueError, match=r"missing \['variant'\]"):
        S.load_scores(p)
    pd.DataFrame({"game": ["Pong"] * 2, "variant": ["d"] * 2, "seed": [0, 0],
                  "score": [1.0, 2.0]}).to_parquet(p)
    with pytest.raises(ValueError, match="duplicate"):
        S.load_scores(p)


def test_eval_episodes_score_is_mean_of_final_episodes(tmp_path):
    p = tmp_path / "eval.parquet"
    pd.DataFrame({"game": "Breakout", "variant": "drama", "seed": 2, "env_step": [50, 100, 100],
                  "episode": [0, 0, 1], "return": [100.0, 4.0, 6.0], "length": 10,
                  "final": [False, True, True]}).to_parquet(p)
    df = S.load_scores(p)
    assert df.to_dict("records") == [{"method": "drama", "game": "Breakout", "run": 2,
                                      "score": 5.0}]


def test_curves_and_score_matrix_padding(tmp_path):
    p = tmp_path / "curves.parquet"
    pd.DataFrame({"game": ["Pong", "Pong", "Boxing"], "variant": "drama", "seed": [0, 1, 0],
                  "env_step": 1000, "return": [14.6, -20.7, 12.1]}).to_parquet(p)
    c = S.load_curves(p)
    mat = S.score_matrix(c, "drama")  # columns in table order: Boxing, Pong
    np.testing.assert_allclose(mat, [[1.0, 1.0], [np.nan, 0.0]])
    with pytest.raises(ValueError, match=r"no runs for games \['Alien'\]"):
        S.score_matrix(c, "drama", ["Alien"])


def test_duplicate_method_across_files_and_missing_file():
    with pytest.raises(ValueError, match="more than one file"):
        S.load_all([S.published_path("IRIS"), S.published_path("drama_atari_performance.csv")])
    with pytest.raises(FileNotFoundError, match="nope.json"):
        S.load_scores("nope.json")
