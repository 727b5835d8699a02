"""The reproduction verdicts (analysis.reproduction): on hand-made data, on published data
(DIAMOND's own runs against DIAMOND's published means and aggregates), the shipped Drama
numbers, and the written table."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import reproduction as R
from analysis import scores as S

DATA = Path(__file__).resolve().parent / "data"
REPS = 2_000


def _long(method: str, runs: dict[str, list[float]]) -> pd.DataFrame:
    rows = [(method, g, i, s) for g, scores in runs.items() for i, s in enumerate(scores)]
    return pd.DataFrame(rows, columns=S.COLUMNS)


def diamond_published() -> pd.DataFrame:
    means = pd.read_csv(DATA / "diamond_paper_means.csv", comment="#").set_index("game")
    return R.published_means(means["DIAMOND"].to_dict(), "DIAMOND paper, Table 1")


# --------------------------------------------------------------- the verdict rule
@pytest.mark.parametrize("low, high, published, runs, expected", [
    (10.0, 20.0, 15.0, 5, "reproduced"),
    (10.0, 20.0, 10.0, 5, "reproduced"),   # the ends count as inside
    (10.0, 20.0, 20.0, 5, "reproduced"),
    (10.0, 20.0, 25.0, 5, "below"),        # our CI lies below the published value
    (10.0, 20.0, 5.0, 5, "above"),
    (10.0, 20.0, np.nan, 5, "no published value"),
    (10.0, 20.0, 15.0, 1, "too few runs"),  # runs are checked first
    (np.nan, np.nan, np.nan, 1, "too few runs"),
    (-21.0, -21.0, -21.0, 3, "reproduced"),  # zero-width CI that hits the value
])
def test_verdict(low, high, published, runs, expected):
    assert R.verdict(low, high, published, runs) == expected


def test_min_runs_is_a_parameter():
    assert R.verdict(1, 2, 1.5, 2, min_runs=3) == "too few runs"
    assert R.verdict(1, 2, 1.5, 3, min_runs=3) == "reproduced"


def test_mean_ci_is_a_seeded_percentile_bootstrap():
    x = np.array([1.0, 2.5, 3.1, 4.7, 10.0])
    mean, lo, hi = R.mean_ci(x, 5000, 0)
    assert mean == pytest.approx(4.26)
    assert x.min() <= lo < mean < hi <= x.max()
    assert R.mean_ci(x, 5000, 0) == (mean, lo, hi)  # same seed, same CI
    one = R.mean_ci(np.array([7.0]), 100, 0)
    assert one[0] == 7.0 and np.isnan(one[1]) and np.isnan(one[2])
    same = R.mean_ci(np.array([-21.0, -21.0]), 100, 0)
    assert same == (-21.0, -21.0, -21.0)


# --------------------------------------------------------------- per game, hand-made
def test_per_game_verdicts_on_hand_made_runs():
    runs = {"Alien": [1000, 1100, 1200], "Amidar": [50, 60, 70], "Assault": [900, 950, 1000],
            "Breakout": [10, 20, 30], "Boxing": [40]}
    published = R.published_means({"Alien": 1100, "Amidar": 200, "Assault": 500,
                                   "Boxing": 40}, "hand-made", "test")
    out = R.reproduction_per_game(_long("m", runs), "m", published, reps=REPS)
    got = dict(zip(out["game"], out["verdict"], strict=True))
    assert got == {"Alien": "reproduced", "Amidar": "below", "Assault": "above",
                   "Boxing": "too few runs", "Breakout": "no published value"}
    assert list(out["game"]) == ["Alien", "Amidar", "Assault", "Boxing", "Breakout"]
    alien = out.set_index("game").loc["Alien"]
    assert alien["runs"] == 3 and alien["mean"] == pytest.approx(1100)
    assert alien["source"] == "hand-made" and alien["status"] == "test"
    lo, hi = S.RANDOM_SCORES["Alien"], S.HUMAN_SCORES["Alien"]
    assert alien["hns_mean"] == pytest.approx((1100 - lo) / (hi - lo))
    assert alien["hns_ci_low"] <= alien["hns_published"] <= alien["hns_ci_high"]


def test_per_game_errors_name_the_problem():
    df = _long("m", {"Alien": [1.0, 2.0]})
    pub = R.published_means({"Alien": 1.5}, "x")
    with pytest.raises(ValueError, match="no scores for method 'other'"):
        R.reproduction_per_game(df, "other", pub)
    with pytest.raises(ValueError, match="Pong"):
        R.reproduction_per_game(df, "m", pub, games=["Alien", "Pong"])


# --------------------------------------------------------------- published data as oracle
def test_diamond_runs_reproduce_diamond_published_means_on_every_game():
    df = S.load_scores(S.published_path("DIAMOND"))
    out = R.reproduction_per_game(df, "DIAMOND", diamond_published(), reps=REPS)
    assert len(out) == 26 and (out["runs"] == 5).all()
    assert (out["verdict"] == "reproduced").all(), out[out["verdict"] != "reproduced"]
    assert np.allclose(out["mean"], out["published"], atol=0.05)  # printed to one decimal


def test_other_methods_runs_do_not_reproduce_diamond():
    """The verdict can fail: IRIS's runs against DIAMOND's means give both directions."""
    df = S.load_scores(S.published_path("IRIS"))
    out = R.reproduction_per_game(df, "IRIS", diamond_published(), reps=REPS)
    got = dict(zip(out["game"], out["verdict"], strict=True))
    assert got["Breakout"] == "below"      # IRIS 83.7 vs DIAMOND 132.5
    assert got["DemonAttack"] == "above"   # IRIS 2034.4 vs DIAMOND 288.1
    assert (out["verdict"] != "reproduced").sum() >= 13


def test_diamond_runs_reproduce_diamond_published_aggregates():
    """DIAMOND's published aggregates (rliable, analysis/data/PROVENANCE.md): mean 1.459,
    median 0.373, IQM 0.641, 11 games above human."""
    df = S.load_scores(S.published_path("DIAMOND"))
    published = pd.DataFrame({"published": [1.459, 0.373, 0.641, 11.0], "source": "DIAMOND",
                              "status": "test"},
                             index=pd.Index(["mean", "median", "iqm", "superhuman_games"],
                                            name="metric"))
    out = R.reproduction_aggregates(df, "DIAMOND", published, reps=REPS).set_index("metric")
    assert (out["verdict"] == "reproduced").all(), out
    assert out.loc["superhuman_games", "value"] == 11
    assert out.loc["mean", "value"] == pytest.approx(1.459, abs=5e-4)
    assert out.loc["iqm", "value"] == pytest.approx(0.641, abs=5e-4)
    # IRIS (mean 1.046) does not reproduce DIAMOND's IQM
    iris = S.load_scores(S.published_path("IRIS"))
    out = R.reproduction_aggregates(iris, "IRIS", published, reps=REPS).set_index("metric")
    assert out.loc["iqm", "verdict"] == "below"


def test_aggregates_on_a_partial_grid_are_not_compared():
    df = S.load_scores(S.published_path("DIAMOND"))
    df = df[df["game"].isin(["Pong", "MsPacman"])]
    out = R.reproduction_aggregates(df, "DIAMOND", R.load_drama_aggregates(), reps=REPS)
    assert (out["verdict"] == "too few games").all(), out
    assert (out["games"] == 2).all()


# --------------------------------------------------------------- shipped Drama numbers
def test_shipped_drama_numbers_are_the_reference_copy():
    shared = Path("/work/shared/reference/drama_paper")
    for name in ("per_game.csv", "aggregates.csv"):
        assert (R.DRAMA_PAPER_DIR / name).exists(), name
        if shared.exists():
            assert (R.DRAMA_PAPER_DIR / name).read_bytes() == (shared / name).read_bytes()
    per_game = R.load_drama_per_game()
    assert list(per_game.index) == list(S.ATARI100K_GAMES)
    assert per_game["published"].notna().sum() == 22
    assert set(per_game.index[per_game["published"].isna()]) == {
        "Breakout", "Freeway", "Pong", "PrivateEye"}
    assert per_game.loc["Qbert", "published"] == 796
    assert per_game.loc["Qbert", "status"] == "row_label_shifted"
    assert per_game.loc["Alien", "source"] == R.DRAMA_PER_GAME_SOURCES["Drama_secondary"]
    agg = R.load_drama_aggregates()
    assert agg["published"].to_dict() == {"mean": 1.049, "median": 0.27, "iqm": 0.367,
                                          "superhuman_games": 8.0}
    assert set(agg["status"]) == {"secondary"}


def test_a_primary_value_replaces_the_secondary_one(tmp_path):
    raw = pd.read_csv(R.DRAMA_PER_GAME_CSV)
    raw.loc[raw["game"] == "Pong", "Drama_paper"] = 15.0
    raw.loc[raw["game"] == "Alien", "Drama_paper"] = 900.0
    raw.to_csv(tmp_path / "per_game.csv", index=False)
    pub = R.load_drama_per_game(tmp_path / "per_game.csv")
    assert pub.loc["Pong", "published"] == 15.0 and pub.loc["Pong", "status"] == "primary"
    assert pub.loc["Alien", "published"] == 900.0
    assert pub.loc["Alien", "source"] == R.DRAMA_PER_GAME_SOURCES["Drama_paper"]
    assert pub.loc["Amidar", "published"] == 131.0  # untouched rows keep the secondary value
    agg = pd.read_csv(R.DRAMA_AGGREGATES_CSV)
    agg.loc[agg["metric"] == "iqm_paper", "value"] = 0.5
    agg.to_csv(tmp_path / "aggregates.csv", index=False)
    a = R.load_drama_aggregates(tmp_path / "aggregates.csv")
    assert a.loc["iqm", "published"] == 0.5 and a.loc["iqm", "status"] == "primary"
    assert a.loc["mean", "published"] == 1.049


def test_bad_published_file_is_rejected(tmp_path):
    (tmp_path / "p.csv").write_text("game,Drama\nPong,1\n")
    with pytest.raises(ValueError, match="missing columns"):
        R.load_drama_per_game(tmp_path / "p.csv")


# --------------------------------------------------------------- the written table
def test_reproduction_table_files(tmp_path):
    runs = {"Alien": [800, 820, 840], "Pong": [-21, -20, -19], "MsPacman": [100, 120, 140]}
    df = _long("drama", runs)
    per_game = R.reproduction_per_game(df, "drama", R.load_drama_per_game(), reps=REPS)
    aggs = R.reproduction_aggregates(df, "drama", R.load_drama_aggregates(), reps=REPS)
    note = R.write_reproduction_table(per_game, aggs, "drama", REPS, tmp_path / "r.md",
                                      tmp_path / "r.csv", tmp_path / "r.tex", tmp_path / "r.html",
                                      steps="160 env steps per run")
    assert "1 reproduced, 1 below, 1 no published value" in note
    md = (tmp_path / "r.md").read_text()
    assert "| Alien | 3 | 820.0 |" in md and "Mean HNS (3 games)" in md
    assert "too few games" in md and "160 env steps" in md
    csv = pd.read_csv(tmp_path / "r.csv")
    assert list(csv["kind"]) == ["game"] * 3 + ["aggregate"] * 4
    assert set(csv["verdict"]) >= {"reproduced", "below", "no published value"}
    html = (tmp_path / "r.html").read_text()
    assert html.count("<tr") == 1 + 3 + 4 and 'class="v-reproduced"' in html
    tex = (tmp_path / "r.tex").read_text()
    assert r"\toprule" in tex and tex.count(r"\\") == 1 + 3 + 4


def test_cli_reproduce(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "analysis", "reproduce",
                           str(S.published_path("DIAMOND")), "--method", "DIAMOND", "--reps",
                           "500", "--out", str(tmp_path / "r")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # DIAMOND's runs against Drama's published means: Drama has no value for 4 games
    assert "| Alien | 5 | 744.1 |" in proc.stdout and "4 no published value" in proc.stdout
    for ext in ("md", "csv", "tex", "html"):
        assert (tmp_path / f"r.{ext}").stat().st_size > 0
    bad = subprocess.run([sys.executable, "-m", "analysis", "reproduce",
                          str(S.published_path("DIAMOND")), "--method", "drama", "--out",
                          str(tmp_path / "x")], capture_output=True, text=True)
    assert bad.returncode == 2 and "no scores for method 'drama'" in bad.stderr
