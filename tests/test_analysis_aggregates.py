"""Aggregates (analysis/aggregates.py): published numbers, equality with rliable itself,
reproducibility, unequal run counts."""

import numpy as np
import pytest
from rliable import library as rly
from rliable import metrics as rlm

from analysis import aggregates as A
from analysis import scores as S

PUBLISHED = {  # point estimates to 3 decimals and games at/above human (reference README)
    "DIAMOND": (1.459, 0.373, 0.641, 0.480, 11),
    "IRIS": (1.046, 0.289, 0.501, 0.512, 10),
}


def _mat(name):
    return S.score_matrix(S.human_normalise(S.load_scores(S.published_path(name))), name)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_point_estimates(name):
    agg = A.aggregate(S.load_scores(S.published_path(name)), reps=200, seed=0)[name]
    mean, median, iqm, og, superhuman = PUBLISHED[name]
    got = [round(agg[k][0], 3) for k in A.METRICS]
    assert got == [mean, median, iqm, og]
    assert agg["superhuman_games"] == superhuman and agg["runs"] == 5
    for k in A.METRICS:
        p, lo, hi = agg[k]
        assert lo <= p <= hi and lo < hi, (k, agg[k])


def _rliable_four(x):
    return np.array([rlm.aggregate_mean(x), rlm.aggregate_median(x), rlm.aggregate_iqm(x),
                     rlm.aggregate_optimality_gap(x)])


@pytest.mark.parametrize("shape", [None, (3, 7)])
def test_bootstrap_equals_rliable_for_the_same_seed(shape):
    mat = _mat("DIAMOND") if shape is None else np.random.default_rng(1).gamma(1.0, size=shape)
    np.random.seed(123)  # rliable draws from numpy's global RNG
    pts, cis = rly.get_interval_estimates({"m": mat}, _rliable_four, reps=300)
    mine_pts, mine_cis = A.bootstrap_metrics(mat, reps=300, rng=123)
    np.testing.assert_allclose(mine_pts, pts["m"], rtol=1e-12)
    np.testing.assert_allclose(mine_cis, cis["m"], rtol=1e-12, atol=1e-14)
    # the rliable backend is rliable itself with seeded-then-restored global state
    bp, bc = A.rliable_metrics(mat, reps=300, seed=123)
    np.testing.assert_array_equal(bc, cis["m"])


def test_probability_of_improvement_equals_rliable():
    x = _mat("DIAMOND")[:, :6]
    y = _mat("IRIS")[:3, :6]  # different run counts: independent resampling per method
    np.random.seed(7)
    pts, cis = rly.get_interval_estimates(
        {"p": [x, y]}, lambda a, b: np.array([rlm.probability_of_improvement(a, b)]), reps=60)
    mine = A.probability_of_improvement(x, y, reps=60, rng=7)
    np.testing.assert_allclose(mine, [pts["p"][0], *cis["p"][:, 0]], rtol=1e-12)


def test_performance_profile_equals_rliable():
    mat = _mat("IRIS")
    taus = np.linspace(0, 4, 9)
    np.random.seed(11)
    prof, band = rly.create_performance_profile({"m": mat}, taus, reps=100)
    mine, mine_band = A.performance_profile(mat, taus, reps=100, rng=11)
    np.testing.assert_allclose(mine, prof["m"], rtol=1e-12)
    np.testing.assert_allclose(mine_band, band["m"], rtol=1e-12, atol=1e-14)


def test_reproducible_and_seed_sensitive_and_leaves_global_rng_alone():
    df = S.load_all([S.published_path("DIAMOND"), S.published_path("IRIS")])
    state = np.random.get_state()
    a = A.aggregate(df, reps=500, seed=3)
    b = A.aggregate(df, reps=500, seed=3)
    c = A.aggregate(df, reps=500, seed=4)
    r1 = A.aggregate(df, methods=["IRIS"], reps=200, seed=3, backend="rliable")
    r2 = A.aggregate(df, methods=["IRIS"], reps=200, seed=3, backend="rliable")
    after = np.random.get_state()
    assert a == b and r1 == r2
    assert a["DIAMOND"]["iqm"][1:] != c["DIAMOND"]["iqm"][1:]
    assert a["DIAMOND"]["iqm"][0] == c["DIAMOND"]["iqm"][0]
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2] == after[2]
    # a method's CIs do not depend on the other methods analysed alongside it
    alone = A.aggregate(df, methods=["IRIS"], reps=500, seed=3)
    assert alone["IRIS"] == a["IRIS"]


def test_unequal_runs_point_estimates_by_hand():
    mat = np.array([[0.0, 2.0, 1.0],
                    [1.0, np.nan, 3.0],
                    [2.0, np.nan, np.nan]])  # k = 3, 1, 2 runs
    pts = A.point_estimates(mat)
    game_means = np.array([1.0, 2.0, 2.0])
    pooled = np.sort([0.0, 1.0, 2.0, 2.0, 1.0, 3.0])  # 6 scores: trim int(1.5) = 1 each end
    og = 1 - np.mean([np.mean([0, 1, 1]), 1.0, np.mean([1, 1])])
    np.testing.assert_allclose(pts, [game_means.mean(), np.median(game_means),
                                     pooled[1:5].mean(), og])


def test_unequal_runs_resampling_stays_within_each_games_runs():
    mat = np.array([[0.0, 2.0, 1.0],
                    [1.0, np.nan, 3.0],
                    [2.0, np.nan, np.nan]])
    k = A.run_counts(mat)
    seen = []
    vals = A.bootstrap_statistic(mat, lambda x, k: (seen.append(x.copy()), x.mean(1)[:, :1])[1],
                                 reps=400, rng=0)
    assert vals.shape == (400, 1)
    x = np.concatenate(seen)  # (reps, runs, games)
    for g in range(3):
        valid = x[:, : k[g], g]
        assert np.isin(valid, mat[: k[g], g]).all() and not np.isnan(valid).any()
        assert np.isnan(x[:, k[g]:, g]).all()
    assert set(np.unique(x[:, :, 0])) == {0.0, 1.0, 2.0}  # every run of game 0 is drawn
    assert (x[:, 0, 1] == 2.0).all()  # the 1-run game contributes its single run every time


def test_unequal_runs_aggregate_and_rliable_backend_refuses():
    df = S.load_scores(S.published_path("DreamerV3-2024-curves"))
    agg = A.aggregate(df, reps=300, seed=0)["DreamerV3-2024-curves"]
    assert agg["runs"] == 5 and agg["runs_min"] == 1
    for k in A.METRICS:
        p, lo, hi = agg[k]
        assert np.isfinite([p, lo, hi]).all() and lo <= p <= hi
    with pytest.raises(ValueError, match="equal run counts"):
        A.aggregate(df, reps=10, backend="rliable")


def test_bad_padding_and_bad_reps_are_errors():
    with pytest.raises(ValueError, match="NaN padding"):
        A.run_counts(np.array([[np.nan, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="reps must be >= 1"):
        A.aggregate(S.load_scores(S.published_path("IRIS")), reps=0)


def test_metric_difference_and_poi_of_identical_methods():
    mat = _mat("IRIS")
    d = A.metric_difference(mat, mat, reps=300, seed=0)
    for k in A.METRICS:
        p, lo, hi = d[k]
        assert p == 0.0 and lo < 0 < hi
    assert A.probability_of_improvement(mat, mat, reps=100)[0] == pytest.approx(0.5)
