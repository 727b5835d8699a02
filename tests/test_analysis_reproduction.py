"""The reproduction verdicts (analysis.reproduction): on hand-made data, on published data
(DIAMOND's own runs against DIAMOND's published means and aggregates), the shipped Drama
numbers, and the written table."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import reproduction as R
from analysis.reproduction_tables import write_reproduction_table
from analysis import scores as S
from analysis import verdicts as V

DATA = Path(__file__).resolve().parent / "data"
REPS = 2_000


def _long(method: str, runs: dict[str, list[float]]) -> pd.DataFrame:
    rows = [(method, g, i, s) for g, scores in runs.items() for i, s in enumerate(scores)]
    return pd.DataFrame(rows, columns=S.COLUMNS)


def diamond_published() -> pd.DataFrame:
    means = pd.read_csv(DATA / "diamond_paper_means.csv", comment="#").set_index("game")
    return R.published_means(means["DIAMOND"].to_dict(), "DIAMOND paper, Table 1")


# --------------------------------------------------------------- the verdict rule
@pytest.mark.parametrize("low, high, margin, published, runs, expected", [
    (-5.0, 5.0, 10.0, 15.0, 5, "reproduced"),    # contains zero, inside the margin
    (-10.0, 10.0, 10.0, 15.0, 5, "reproduced"),  # the margin's ends count as inside
    (-12.0, 5.0, 10.0, 15.0, 5, "inconclusive"),  # too wide: crosses the margin
    (-30.0, -2.0, 10.0, 15.0, 5, "below"),       # excludes zero below
    (-8.0, -2.0, 10.0, 15.0, 5, "below"),        # a difference shown, though within the margin
    (2.0, 30.0, 10.0, 15.0, 5, "above"),
    (0.0, 3.0, 10.0, 15.0, 5, "reproduced"),     # zero is an end: not excluded
    (-5.0, 5.0, 10.0, np.nan, 5, "no published value"),
    (-5.0, 5.0, 10.0, 15.0, 1, "too few runs"),  # runs are checked first
    (np.nan, np.nan, 10.0, np.nan, 1, "too few runs"),
    (0.0, 0.0, 0.0, -21.0, 3, "reproduced"),     # zero-width interval at zero
])
def test_verdict(low, high, margin, published, runs, expected):
    assert R.verdict(low, high, margin, published, runs) == expected


def test_min_runs_is_a_parameter():
    assert R.verdict(-1, 1, 2, 1.5, 2, min_runs=3) == "too few runs"
    assert R.verdict(-1, 1, 2, 1.5, 3, min_runs=3) == "reproduced"


def test_t_difference_counts_the_published_means_error():
    """Means only: se = s * sqrt(1/n + 1/m) with n - 1 degrees of freedom; with the published
    runs' spread: Welch's interval (scipy's Welch t test agrees)."""
    from scipy import stats

    x = np.array([10.0, 12.0, 14.0, 16.0, 18.0])  # mean 14, sd sqrt(10)
    d, lo, hi = V.t_difference(x.mean(), x.std(ddof=1), 5, 13.0, 5, None, 0.95)
    half = stats.t.ppf(0.975, 4) * np.sqrt(10) * np.sqrt(2 / 5)
    assert d == pytest.approx(1.0) and (lo, hi) == pytest.approx((1 - half, 1 + half))
    # ignoring the published mean's error (m -> infinity) gives the narrower one-sample interval
    _, lo1, hi1 = V.t_difference(x.mean(), x.std(ddof=1), 5, 13.0, 10**9, None, 0.95)
    assert hi1 - lo1 == pytest.approx((hi - lo) / np.sqrt(2), rel=1e-6)
    y = np.array([1.0, 5.0, 9.0, 20.0])
    d, lo, hi = V.t_difference(x.mean(), x.std(ddof=1), 5, y.mean(), 4, y.std(ddof=1), 0.95)
    ci = stats.ttest_ind(x, y, equal_var=False).confidence_interval(0.95)
    assert (lo, hi) == pytest.approx((ci.low, ci.high))


def test_constructed_cases_get_the_four_verdicts():
    """Clear below, clear above, equivalent, too wide: our runs against a published mean of 5
    runs (Alien: the margin 0.1 x (human - random) is 690 points)."""
    s = V.Settings()
    pub = 1000.0
    cases = {"below": [500, 510, 520, 530, 540], "above": [1900, 1950, 2000, 2050, 2100],
             "reproduced": [990, 1000, 1010, 1020, 980],
             "inconclusive": [100, 3000, 500, 2500, 900]}
    for expected, runs in cases.items():
        x = np.array(runs, float)
        _, lo, hi = V.t_difference(x.mean(), x.std(ddof=1), 5, pub, 5, None, s.level_means_only)
        margin = V.margin_raw("Alien", pub, s)
        assert margin == pytest.approx(690.0, abs=0.1)
        assert R.verdict(lo, hi, margin, pub, 5) == expected, (expected, lo, hi)
    # a relative margin wins where larger
    assert V.margin_raw("Alien", pub, V.Settings(margin_relative=0.8)) == pytest.approx(800)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="level_means_only"):
        V.Settings(level_means_only=1.0)
    with pytest.raises(ValueError, match="published_runs"):
        V.Settings(published_runs=1)
    with pytest.raises(ValueError, match="margin_hns"):
        V.Settings(margin_hns=-0.1)
    with pytest.raises(ValueError, match="unknown reproduction settings"):
        V.Settings.from_config({"levle": 0.9})
    assert V.Settings.from_config({"level": 0.9, "rates": {}}).level == 0.9


def test_mean_ci_is_a_t_interval():
    x = np.array([1.0, 2.5, 3.1, 4.7, 10.0])
    mean, sd, lo, hi = R.mean_ci(x)
    assert mean == pytest.approx(4.26) and sd == pytest.approx(x.std(ddof=1))
    from scipy import stats

    ci = stats.ttest_1samp(x, 0).confidence_interval(0.95)
    assert (lo, hi) == pytest.approx((ci.low, ci.high))
    one = R.mean_ci(np.array([7.0]))
    assert one[0] == 7.0 and np.isnan(one[1]) and np.isnan(one[2])
    assert R.mean_ci(np.array([-21.0, -21.0])) == (-21.0, 0.0, -21.0, -21.0)


# --------------------------------------------------------------- per game, hand-made
def test_per_game_verdicts_on_hand_made_runs():
    runs = {"Alien": [1080, 1100, 1120], "Amidar": [50, 60, 70], "Assault": [900, 950, 1000],
            "Breakout": [10, 20, 30], "Boxing": [40], "Asterix": [100, 5000, 9000]}
    published = R.published_means({"Alien": 1100, "Amidar": 200, "Assault": 500,
                                   "Boxing": 40, "Asterix": 4000}, "hand-made", "test")
    out = R.reproduction_per_game(_long("m", runs), "m", published)
    got = dict(zip(out["game"], out["verdict"], strict=True))
    assert got == {"Alien": "reproduced", "Amidar": "below", "Assault": "above",
                   "Asterix": "inconclusive", "Boxing": "too few runs",
                   "Breakout": "no published value"}
    assert list(out["game"]) == ["Alien", "Amidar", "Assault", "Asterix", "Boxing", "Breakout"]
    alien = out.set_index("game").loc["Alien"]
    assert alien["runs"] == 3 and alien["mean"] == pytest.approx(1100)
    assert alien["source"] == "hand-made" and alien["status"] == "test"
    assert alien["published_runs"] == 5 and alien["published_spread"] == "ours for theirs"
    lo, hi = S.RANDOM_SCORES["Alien"], S.HUMAN_SCORES["Alien"]
    assert alien["hns_mean"] == pytest.approx((1100 - lo) / (hi - lo))
    assert alien["hns_margin"] == pytest.approx(0.1)
    assert alien["hns_diff_low"] <= 0 <= alien["hns_diff_high"]
    # more published runs behind the mean: a narrower interval
    more = R.published_means({"Alien": 1100}, "x", runs={"Alien": 50})
    narrow = R.reproduction_per_game(_long("m", {"Alien": runs["Alien"]}), "m", more).iloc[0]
    assert narrow["published_runs"] == 50
    assert narrow["diff_high"] - narrow["diff_low"] < alien["diff_high"] - alien["diff_low"]


def test_per_game_errors_name_the_problem():
    df = _long("m", {"Alien": [1.0, 2.0]})
    pub = R.published_means({"Alien": 1.5}, "x")
    with pytest.raises(ValueError, match="no scores for method 'other'"):
        R.reproduction_per_game(df, "other", pub)
    with pytest.raises(ValueError, match="Pong"):
        R.reproduction_per_game(df, "m", pub, games=["Alien", "Pong"])


# --------------------------------------------------------------- published data as oracle
def test_diamond_runs_against_diamond_published_means_are_never_called_different():
    """Their own mean (to one decimal) is a perfect reproduction: never below/above; with 5
    runs and our spread standing in for the published one, most games cannot tell."""
    df = S.load_scores(S.published_path("DIAMOND"))
    out = R.reproduction_per_game(df, "DIAMOND", diamond_published())
    assert len(out) == 26 and (out["runs"] == 5).all()
    assert set(out["verdict"]) == {"reproduced", "inconclusive"}, out
    assert (out["verdict"] == "reproduced").sum() >= 5
    assert np.allclose(out["mean"], out["published"], atol=0.05)  # printed to one decimal


def test_other_methods_runs_do_not_reproduce_diamond():
    """The verdict can fail: IRIS's runs against DIAMOND's means give both directions."""
    df = S.load_scores(S.published_path("IRIS"))
    out = R.reproduction_per_game(df, "IRIS", diamond_published())
    got = dict(zip(out["game"], out["verdict"], strict=True))
    assert got["Breakout"] == "below"      # IRIS 83.7 vs DIAMOND 132.5
    assert got["Qbert"] == "below"         # IRIS 745.7 vs DIAMOND 4499.3
    assert got["BattleZone"] == "above"    # IRIS 13074 vs DIAMOND 4702
    assert got["Assault"] == "inconclusive"  # IRIS 1524.4 vs DIAMOND 1526.4: too much spread
    assert (out["verdict"] == "below").sum() >= 5


def test_published_per_run_scores_use_their_own_spread():
    iris = S.load_scores(S.published_path("IRIS"))
    per_game, aggs = R.published_from_runs(S.load_scores(S.published_path("DIAMOND")), "D")
    assert (per_game["runs"] == 5).all() and per_game["sd"].notna().all()
    assert aggs.loc["iqm", "published"] == pytest.approx(0.641, abs=5e-4)
    assert aggs.loc["superhuman_games", "published"] == 11
    out = R.reproduction_per_game(iris, "IRIS", per_game).set_index("game")
    assert (out["published_spread"] == "published runs").all()
    assert out.loc["DemonAttack", "verdict"] == "above"   # IRIS 2034.4 vs DIAMOND 288.1
    assert out.loc["Qbert", "verdict"] == "below"         # IRIS 745.7 vs DIAMOND 4499.3


def test_diamond_runs_against_diamond_published_aggregates():
    """DIAMOND's published aggregates (rliable, analysis/data/PROVENANCE.md): mean 1.459,
    median 0.373, IQM 0.641, 11 games above human: never below/above."""
    df = S.load_scores(S.published_path("DIAMOND"))
    published = pd.DataFrame({"published": [1.459, 0.373, 0.641, 11.0], "source": "DIAMOND",
                              "status": "test"},
                             index=pd.Index(["mean", "median", "iqm", "superhuman_games"],
                                            name="metric"))
    out = R.reproduction_aggregates(df, "DIAMOND", published, reps=REPS).set_index("metric")
    assert set(out["verdict"]) <= {"reproduced", "inconclusive"}, out
    assert (out["diff_low"] < 0).all() and (out["diff_high"] > 0).all()
    assert out.loc["superhuman_games", "value"] == 11
    assert out.loc["mean", "value"] == pytest.approx(1.459, abs=5e-4)
    assert out.loc["iqm", "value"] == pytest.approx(0.641, abs=5e-4)
    # IRIS (mean 1.046) is below DIAMOND's mean and IQM
    iris = S.load_scores(S.published_path("IRIS"))
    out = R.reproduction_aggregates(iris, "IRIS", published, reps=REPS).set_index("metric")
    assert out.loc["iqm", "verdict"] == "below" and out.loc["mean", "verdict"] == "below"


def test_aggregates_on_a_partial_grid_are_not_compared():
    df = S.load_scores(S.published_path("DIAMOND"))
    df = df[df["game"].isin(["Pong", "MsPacman"])]
    out = R.reproduction_aggregates(df, "DIAMOND", R.load_drama_aggregates(), reps=REPS)
    assert (out["verdict"] == "too few games").all(), out
    assert (out["games"] == 2).all()


# --------------------------------------------------------------- the measured error rates
def test_simulated_rates_on_a_small_draw():
    """SPR's runs, 5 as ours and a disjoint 5 as the published mean: the new rule rarely calls
    a perfect reproduction below/above, the old one (published mean inside a percentile
    bootstrap CI of ours) often does; power grows with the shift."""
    spr = S.load_scores(S.published_path("SPR"))
    games = ["Alien", "Assault", "Boxing", "Breakout", "Freeway", "Krull", "MsPacman", "Qbert"]
    rates = V.simulate_rates(spr, 5, draws=300, games=games)
    assert list(rates["game"]) == games
    total = rates[["false_below", "false_above", "inconclusive", "reproduced"]].sum(1)
    assert np.allclose(total, 1.0)
    summary = V.summarise(rates)
    assert summary["false_call"] <= 0.07, summary
    assert summary["power_0.1"] < summary["power_0.25"] < summary["power_0.5"]
    assert summary["power_0.5"] > 0.5
    old = V.interval_coverage(spr, 5, draws=300, reps=500, games=games)
    assert old["old_rule_reproduced"] < 0.85, old  # i.e. > 15% false calls
    assert old["percentile_coverage"] < old["t_coverage"] < 0.95
    # the same seed gives the same rates
    again = V.simulate_rates(spr, 5, draws=300, games=games)
    pd.testing.assert_frame_equal(rates, again)


def test_simulated_aggregate_rates_on_a_small_draw():
    spr = S.load_scores(S.published_path("SPR"))
    rates = V.simulate_aggregate_rates(spr, 5, draws=30, reps=200).set_index("metric")
    assert list(rates.index) == list(V.AGG_METRICS)
    assert (rates.loc[["mean", "iqm"], "false_call"] <= 0.15).all(), rates
    assert (rates.loc[["mean", "iqm"], "power_0.5"] >= 0.9).all(), rates


def test_seeds_planner():
    spr = S.load_scores(S.published_path("SPR"))
    spr = spr[spr["game"].isin(["Seaquest", "CrazyClimber"])]
    plan = V.seeds_needed(spr, 0.25, 5, candidates=range(2, 9), draws=100).set_index("game")
    assert 2 <= plan.loc["Seaquest", "seeds"] <= 8 and plan.loc["Seaquest", "power"] >= 0.8
    assert np.isnan(plan.loc["CrazyClimber", "seeds"])  # too noisy for 8 seeds
    assert plan.loc["CrazyClimber", "power"] < 0.8


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
    per_game = R.reproduction_per_game(df, "drama", R.load_drama_per_game())
    aggs = R.reproduction_aggregates(df, "drama", R.load_drama_aggregates(), reps=REPS)
    spr = S.load_scores(S.published_path("SPR"))
    spr = spr[spr["game"].isin(["Alien", "Pong", "MsPacman"])]
    rates = R.verdict_rates(spr, 3, draws=50, aggregate_draws=0)
    note = write_reproduction_table(per_game, aggs, "drama", REPS, tmp_path / "r.md",
                                    tmp_path / "r.csv", tmp_path / "r.tex", tmp_path / "r.html",
                                    steps="160 env steps per run", rates=rates,
                                    rates_source="SPR (3 games)",
                                    out_rates_html=tmp_path / "rates.html",
                                    out_rates_csv=tmp_path / "rates.csv",
                                    out_rst=tmp_path / "r.rst")
    assert "1 reproduced, 1 below, 1 no published value" in note
    assert "our runs' spread for theirs" in note and "99%" in note
    md = (tmp_path / "r.md").read_text()
    assert "| Alien | 3 | 820.0 | 820.0 (5) | +0.0 [" in md and "Mean HNS (3 games)" in md
    assert "too few games" in md and "160 env steps" in md
    assert "simulated on SPR (3 games)" in md and "False below" in md
    csv = pd.read_csv(tmp_path / "r.csv")
    assert list(csv["name"]) == ["Alien", "MsPacman", "Pong"] and set(csv["kind"]) == {"game"}
    assert list(csv["verdict"]) == ["reproduced", "below", "no published value"]
    agg_csv = pd.read_csv(tmp_path / "r_aggregates.csv")
    assert list(agg_csv["name"]) == list(V.AGG_METRICS)
    assert (agg_csv["verdict"] == "too few games").all()
    html = (tmp_path / "r.html").read_text()
    assert html.count("<tr") == 1 + 3 + 4 and 'class="v-reproduced"' in html
    tex = (tmp_path / "r.tex").read_text()
    assert r"\toprule" in tex and tex.count(r"\\") == 1 + 3 + 4
    assert (tmp_path / "rates.html").read_text().count("<tr") == 2
    assert pd.read_csv(tmp_path / "rates.csv")["row"].tolist() == ["per game"]
    assert "perfect reproduction called below / above" in (tmp_path / "r.rst").read_text()


def test_published_means_csv(tmp_path):
    (tmp_path / "p.csv").write_text("game,published,runs\nalien,820,10\nPong,15,\n")
    pub = R.load_published_means_csv(tmp_path / "p.csv")
    assert pub.loc["Alien", "published"] == 820 and pub.loc["Alien", "runs"] == 10
    assert np.isnan(pub.loc["Pong", "runs"])
    df = _long("m", {"Alien": [800, 820, 840], "Pong": [14, 15, 16]})
    out = R.reproduction_per_game(df, "m", pub).set_index("game")
    assert out.loc["Alien", "published_runs"] == 10 and out.loc["Pong", "published_runs"] == 5
    assert R.aggregates_from_means(pub, "p")["published"].isna().all()  # 2 of 26 games
    for text, match in [("game,Drama\nPong,1\n", "missing columns \\['published'\\]"),
                        ("game,published\nPong,1\npong,2\n", "games listed twice"),
                        ("game,published\nPong,lots\n", "non-numeric published values"),
                        ("game,published,runs\nPong,1,1\n", "runs must be whole numbers"),
                        ("game,published\nPacman,1\n", "Pacman")]:
        (tmp_path / "bad.csv").write_text(text)
        with pytest.raises(ValueError, match=match):
            R.load_published_means_csv(tmp_path / "bad.csv")


def test_aggregates_from_26_published_means():
    means = pd.read_csv(DATA / "diamond_paper_means.csv", comment="#").set_index("game")
    aggs = R.aggregates_from_means(R.published_means(means["DIAMOND"].to_dict(), "D"), "D")
    assert aggs.loc["mean", "published"] == pytest.approx(1.459, abs=5e-4)
    assert aggs.loc["median", "published"] == pytest.approx(0.373, abs=5e-4)
    assert aggs.loc["superhuman_games", "published"] == 11
    assert np.isnan(aggs.loc["iqm", "published"])  # needs the runs


def _cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "analysis", *map(str, args)],
                          capture_output=True, text=True)


def test_cli_reproduce(tmp_path):
    proc = _cli("reproduce", S.published_path("DIAMOND"), "--method", "DIAMOND", "--reps", 500,
                "--out", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    # DIAMOND's runs against Drama's published means: Drama has no value for 4 games
    assert "| Alien | 5 | 744.1 | 820.0 (5) |" in proc.stdout
    assert "4 no published value" in proc.stdout
    for name in ("r.md", "r.csv", "r_aggregates.csv", "r.tex", "r.html"):
        assert (tmp_path / name).stat().st_size > 0
    bad = _cli("reproduce", S.published_path("DIAMOND"), "--method", "drama", "--out",
               tmp_path / "x")
    assert bad.returncode == 2 and "no scores for method 'drama'" in bad.stderr
    bad = _cli("reproduce", S.published_path("DIAMOND"), "--method", "DIAMOND",
               "--level-means-only", "1.5", "--out", tmp_path / "x")
    assert bad.returncode == 2 and "level_means_only must be in [0.5, 1)" in bad.stderr


def test_cli_reproduce_against_any_published_set(tmp_path):
    """IRIS's runs against DIAMOND's per-run scores, then against a means CSV."""
    proc = _cli("reproduce", S.published_path("IRIS"), "--method", "IRIS", "--published",
                S.published_path("DIAMOND"), "--reps", 500, "--out", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    csv = pd.read_csv(tmp_path / "r.csv").set_index("name")
    assert (csv["published_spread"] == "published runs").all()
    assert csv.loc["DemonAttack", "verdict"] == "above" and csv.loc["Qbert", "verdict"] == \
        "below"
    aggs = pd.read_csv(tmp_path / "r_aggregates.csv").set_index("name")
    assert aggs.loc["mean", "published"] == pytest.approx(1.459, abs=5e-4)
    assert aggs.loc["mean", "verdict"] == "below"
    (tmp_path / "p.csv").write_text("game,published,runs\nAlien,744.1,5\nBreakout,132.5,5\n")
    proc = _cli("reproduce", S.published_path("IRIS"), "--method", "IRIS", "--games",
                "Alien,Breakout", "--published", tmp_path / "p.csv", "--reps", 200, "--out",
                tmp_path / "c")
    assert proc.returncode == 0, proc.stderr
    csv = pd.read_csv(tmp_path / "c.csv").set_index("name")
    assert list(csv["verdict"]) == ["below", "below"]
    assert (csv["published_spread"] == "ours for theirs").all()
    missing = _cli("reproduce", S.published_path("IRIS"), "--method", "IRIS", "--published",
                   tmp_path / "nope.csv", "--out", tmp_path / "x")
    assert missing.returncode == 2 and "published file not found" in missing.stderr


def test_cli_power(tmp_path):
    spr = json_subset(tmp_path, "SPR", ["Seaquest", "CrazyClimber"])
    proc = _cli("power", "--method", spr, "--delta", 0.25, "--max-seeds", 8, "--draws", 100,
                "--aggregate-draws", 10)
    assert proc.returncode == 0, proc.stderr
    assert "| Seaquest | 100 |" in proc.stdout and "| CrazyClimber | 100 | > 8 |" in proc.stdout
    assert "IQM HNS" in proc.stdout
    bad = _cli("power", "--method", spr, "--delta", -1)
    assert bad.returncode == 2 and "--delta must be > 0" in bad.stderr


def json_subset(tmp_path, name: str, games: list[str]):
    import json

    data = json.loads(S.published_path(name).read_text())
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({g: data[g] for g in games}))
    return path


def test_verdict_rates_benchmark_runs_small(tmp_path):
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "verdict_rates.py"
    proc = subprocess.run([sys.executable, str(script), "--n", "3", "--draws", "20",
                           "--aggregate-draws", "2", "--reps", "50", "--out",
                           str(tmp_path / "rates")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(tmp_path / "rates.csv")
    assert list(table["row"]) == ["per game", "Mean HNS", "Median HNS", "IQM HNS",
                                  "Games >= human"]
    assert table.loc[0, "draws"] == 20 * 26 and 0 < table.loc[0, "old_rule_reproduced"] < 1
    assert "| 3 | 3 | per game | 520 |" in proc.stdout and " CPUs" in proc.stdout
