"""Paper outputs (tables, cost table, figures) and the CLI, on a smoke-sized project grid
(2 games x 2 seeds x 3 variants, written in the workflow's parquet formats) plus published
data."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import aggregates as A
from analysis import figures as F
from analysis import scores as S
from analysis import tables as T

ROOT = Path(__file__).resolve().parents[1]
GAMES = ["Breakout", "Pong"]
VARIANTS = {"drama": 0.9, "uniform": 0.6, "mamba1": 0.4}  # fraction of human, for the fixture


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """scores.parquet and curves.parquet as the workflow's collect rule writes them."""
    d = tmp_path_factory.mktemp("results")
    rng = np.random.default_rng(0)
    rows, curves = [], []
    for v, frac in VARIANTS.items():
        for g in GAMES:
            lo, hi = S.RANDOM_SCORES[g], S.HUMAN_SCORES[g]
            for seed in (0, 1):
                final = lo + frac * (1 + 0.2 * rng.standard_normal()) * (hi - lo)
                rows.append({"game": g, "variant": v, "seed": seed, "score": final,
                             "git_commit": "deadbeef", "device": "cpu"})
                for step in range(0, 100_001, 25_000):
                    curves.append({"game": g, "variant": v, "seed": seed, "env_step": step,
                                   "return": lo + step / 100_000 * (final - lo)})
    pd.DataFrame(rows).to_parquet(d / "scores.parquet")
    pd.DataFrame(curves).to_parquet(d / "curves.parquet")
    return d


@pytest.fixture(scope="module")
def scores(grid):
    return S.load_all([grid / "scores.parquet", S.published_path("DIAMOND"),
                       S.published_path("IRIS")])


def test_per_game_table(scores, tmp_path):
    out = {ext: tmp_path / f"table.{ext}" for ext in ("md", "csv", "tex")}
    frame = T.write_per_game_table(scores, list(VARIANTS), ["IRIS", "DIAMOND"], out["md"],
                                   out["csv"], out["tex"])
    md, tex = out["md"].read_text(), out["tex"].read_text()
    csv = pd.read_csv(out["csv"], index_col="game")
    assert list(csv.index[:2]) == GAMES and "drama_std" in csv.columns
    # mean +- std over seeds for variants; per-game means for baselines
    sub = scores[(scores["method"] == "drama") & (scores["game"] == "Pong")]["score"]
    assert csv.loc["Pong", "drama_mean"] == pytest.approx(sub.mean(), rel=1e-5)
    assert csv.loc["Pong", "drama_std"] == pytest.approx(sub.std(), rel=1e-5)
    assert f"{sub.mean():,.1f} ± {sub.std():.1f}" in md
    # DIAMOND (20.4 on Pong, 132.5 on Breakout) beats every other column: bold
    assert "**20.4**" in md and "**132.5**" in md and r"\textbf{20.4}" in tex
    # aggregate rows are the rliable point estimates over the table's 2 games
    pts = A.point_estimates(S.score_matrix(S.human_normalise(scores), "drama", GAMES))
    assert csv.loc["iqm", "drama_mean"] == pytest.approx(pts[2], rel=1e-5)
    assert frame.loc["superhuman_games", ("Human", "mean")] == 2
    assert "Optimality gap" in md and r"\midrule" in tex and "booktabs" in tex


def test_table_needs_its_methods(scores, tmp_path):
    with pytest.raises(ValueError, match="no scores for method 'STORM'"):
        T.write_per_game_table(scores, ["drama"], ["STORM"], tmp_path / "a.md",
                               tmp_path / "a.csv", tmp_path / "a.tex")


def test_cost_table(tmp_path):
    infos = [{"variant": "drama", "game": "Pong", "seed": s, "wall_time_s": w, "device": "cuda:0",
              "env_steps": 100_000} for s, w in ((0, 3600.0), (1, 7200.0))]
    infos.append({"variant": "uniform", "game": "Pong", "seed": 0, "wall_time_s": 1800.0,
                  "device": "cpu", "env_steps": 100_000})
    paths = []
    for i, info in enumerate(infos):
        paths.append(tmp_path / f"run{i}" / "run_info.json")
        paths[-1].parent.mkdir()
        paths[-1].write_text(json.dumps(info))
    frame = T.write_cost_table(T.load_run_infos(paths), tmp_path / "cost.md",
                               tmp_path / "cost.csv")
    drama = frame[frame["variant"] == "drama"].iloc[0]
    assert (drama["runs"], drama["wall_h_mean"], drama["gpu_h_per_run"],
            drama["gpu_h_total"]) == (2, 1.5, 1.5, 3.0)
    assert frame[frame["variant"] == "uniform"].iloc[0]["gpu_h_total"] == 0.0
    assert "| drama | cuda:0 | 2 |" in (tmp_path / "cost.md").read_text()
    with pytest.raises(ValueError, match="wall_time_s"):
        T.cost_frame([{"variant": "drama", "game": "Pong", "seed": 0}])


def _check_figure(png: Path):
    assert png.stat().st_size > 10_000, png
    assert png.with_suffix(".pdf").stat().st_size > 1_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures(scores, grid, tmp_path):
    agg = A.aggregate(scores, games=GAMES, reps=500, seed=0)
    F.plot_aggregate_intervals(agg, tmp_path / "aggregates.png")
    for name, (x, y, title) in F.ABLATIONS.items():
        F.plot_ablation(scores, x, y, tmp_path / f"ablation_{name}.png", title=title, reps=500)
    F.plot_performance_profiles(scores, [*VARIANTS, "IRIS"], tmp_path / "profiles.png",
                                reps=200)
    F.plot_probability_of_improvement(scores, [("drama", "uniform"), ("drama", "mamba1")],
                                      tmp_path / "poi.png", reps=200)
    F.plot_sample_efficiency(S.load_curves(grid / "curves.parquet"), tmp_path / "curves.png",
                             reps=200)
    for png in sorted(tmp_path.glob("*.png")):
        _check_figure(png)
    assert len(list(tmp_path.glob("*.png"))) == 6


def test_ablation_without_its_variant_is_a_clear_error(scores, tmp_path):
    only_drama = scores[scores["method"] != "uniform"]
    with pytest.raises(ValueError, match=r"missing \['uniform'\]"):
        F.plot_ablation(only_drama, "drama", "uniform", tmp_path / "a.png", reps=10)
    assert not (tmp_path / "a.png").exists()


def test_sample_efficiency_values(grid):
    steps, pts, cis = F.sample_efficiency(S.load_curves(grid / "curves.parquet"), reps=100)
    assert steps.tolist() == [0, 25_000, 50_000, 75_000, 100_000]
    for m in VARIANTS:
        assert pts[m][0] == pytest.approx(0.0) and (np.diff(pts[m]) > 0).all()
        assert (cis[m][0] <= pts[m] + 1e-12).all() and (pts[m] <= cis[m][1] + 1e-12).all()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "analysis", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_aggregate_json_contract(grid):
    files = [str(S.published_path("DIAMOND")), str(S.published_path("IRIS")),
             str(grid / "scores.parquet")]
    r1 = _cli("aggregate", *files, "--reps", "300", "--seed", "5", "--json")
    assert r1.returncode == 0, r1.stderr
    out = json.loads(r1.stdout)
    assert list(out) == ["DIAMOND", "IRIS", "drama", "mamba1", "uniform"]
    for _m, r in out.items():
        assert set(r) == {"mean", "median", "iqm", "optimality_gap", "superhuman_games", "runs"}
        assert all(len(r[k]) == 3 for k in A.METRICS)
    assert [round(v[0], 3) for v in (out["IRIS"][k] for k in A.METRICS)] == \
        [1.046, 0.289, 0.501, 0.512]
    assert (out["IRIS"]["superhuman_games"], out["IRIS"]["runs"], out["drama"]["runs"]) == \
        (10, 5, 2)
    assert "different numbers of games" in r1.stderr
    r2 = _cli("aggregate", *files, "--reps", "300", "--seed", "5", "--json")
    assert r2.stdout == r1.stdout  # reproducible across processes


def test_cli_readable_table_and_errors(tmp_path):
    r = _cli("aggregate", str(S.published_path("DIAMOND")), "--reps", "200")
    assert r.returncode == 0, r.stderr
    assert "| DIAMOND | 26 | 5 | 11 | 1.459 [" in r.stdout
    r = _cli("aggregate", str(tmp_path / "missing.json"))
    assert r.returncode == 2 and "score file not found" in r.stderr
    r = _cli("aggregate", str(S.published_path("DIAMOND")), "--reps", "0")
    assert r.returncode == 2 and "--reps must be >= 1" in r.stderr
