"""analysis.collect (run outputs -> scores/curves) and the figure fixes of the report: sample
efficiency without periodic evaluations and its step labels, data-sized performance-profile
axes, plain-number log axes of the sequence-scaling figure, the reproduction figure, HTML
tables."""

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from analysis import collect as C
from analysis import figures as F
from analysis import reproduction as R
from analysis import scores as S
from analysis import tables as T


def _run(root, game, variant, seed, periodic=(75, 150), info=True, info_seed=None):
    run = root / game / variant / f"seed{seed}"
    run.mkdir(parents=True)
    rows = [(game, variant, seed, s, 0, 1.0 + s, 100, False) for s in periodic]
    rows += [(game, variant, seed, 160, e, 5.0 + e, 100, True) for e in range(2)]
    pd.DataFrame(rows, columns=["game", "variant", "seed", "env_step", "episode", "return",
                                "length", "final"]).to_parquet(run / "eval.parquet")
    if info:
        (run / "run_info.json").write_text(json.dumps({
            "game": game, "variant": variant,
            "seed": seed if info_seed is None else info_seed, "wall_time_s": 10.0,
            "device": "cpu", "env_steps": 160, "updates": {"world_model": 60},
            "packages": ["a", "b"]}))
    return run / "eval.parquet"


def test_collect_runs_scores_curves_and_provenance(tmp_path):
    evals = [_run(tmp_path, "Pong", "drama", 0), _run(tmp_path, "Pong", "drama", 1)]
    scores, curves = C.collect_runs(evals)
    assert list(scores.columns[:5]) == ["game", "variant", "seed", "score", "final_episodes"]
    assert list(scores["score"]) == [5.5, 5.5] and (scores["final_episodes"] == 2).all()
    assert (scores["updates.world_model"] == 60).all()
    assert scores.loc[0, "packages"] == '["a", "b"]'
    assert list(curves.columns) == C.CURVE_COLUMNS and len(curves) == 4
    assert sorted(curves["env_step"].unique()) == [75, 150]


def test_collect_runs_without_periodic_evaluations_gives_empty_curves(tmp_path):
    scores, curves = C.collect_runs([_run(tmp_path, "Pong", "drama", 0, periodic=())])
    assert len(scores) == 1 and curves.empty and list(curves.columns) == C.CURVE_COLUMNS
    C.write_collected([tmp_path / "Pong/drama/seed0/eval.parquet"], tmp_path / "s.parquet",
                      tmp_path / "c.parquet")
    assert S.load_curves(tmp_path / "c.parquet", allow_empty=True).empty
    with pytest.raises(ValueError, match="no curve points"):
        S.load_curves(tmp_path / "c.parquet")


def test_collect_runs_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="run_info.json: missing"):  # names the run too
        C.collect_runs([_run(tmp_path / "a", "Pong", "drama", 0, info=False)])
    with pytest.raises(ValueError, match="seed7"):
        C.collect_runs([_run(tmp_path / "b", "Pong", "drama", 0, info_seed=7)])
    with pytest.raises(ValueError, match="no runs"):
        C.collect_runs([])


def _curves(steps, methods=("drama", "uniform"), same=False):
    rows = []
    for m in methods:
        for g in ("Pong", "MsPacman"):
            lo, hi = S.RANDOM_SCORES[g], S.HUMAN_SCORES[g]
            for seed in (0, 1):
                for s in steps:
                    frac = 0.1 if same else 0.1 + 0.05 * methods.index(m) + 0.01 * seed
                    rows.append((m, g, seed, s, lo + frac * (hi - lo)))
    df = pd.DataFrame(rows, columns=["method", "game", "run", "env_step", "score"])
    return S.human_normalise(df)


def test_sample_efficiency_without_evaluations_says_so(tmp_path):
    empty = _curves([]).iloc[:0]
    fig = F.plot_sample_efficiency(empty, tmp_path / "se.png", reps=50)
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "No periodic evaluations" in texts and (tmp_path / "se.pdf").exists()


def test_sample_efficiency_labels_steps_and_keeps_coinciding_curves_visible(tmp_path):
    fig = F.plot_sample_efficiency(_curves([75, 150], same=True), tmp_path / "a.png", reps=50)
    ax = fig.axes[0]
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["75", "150"]
    assert ax.get_xlabel() == "Environment steps"
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    # coinciding curves: the one drawn below is wider with a larger hollow marker
    assert lines["uniform"].get_linewidth() > lines["drama"].get_linewidth()
    assert lines["uniform"].get_markersize() > lines["drama"].get_markersize()
    assert lines["uniform"].get_markerfacecolor() == "none"
    assert lines["drama"].get_zorder() > lines["uniform"].get_zorder()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["drama", "uniform"]
    fig = F.plot_sample_efficiency(_curves([0, 50_000, 100_000]), tmp_path / "b.png", reps=50)
    fig.canvas.draw()
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0", "50k", "100k"]
    plt.close("all")


def test_profile_axis_ends_just_past_the_best_run():
    taus = F.profile_taus([np.array([[0.1, 1.2], [0.3, 0.9]])])
    assert taus[0] == 0 and 1.2 < taus[-1] <= 1.5
    assert 1.0 < F.profile_taus([np.array([[0.1, 0.2]])])[-1] <= 1.5  # at least to human
    assert F.profile_taus([np.array([[3.7]])])[-1] == pytest.approx(4.0)


def _bench():
    rows = [{"kind": k, "backend": "torch", "device": "cpu", "batch": 4, "length": n,
             "d_model": 64, "layers": 1, "ms_fwd_bwd": ms * n, "peak_mem_mb": 20 + n / 10,
             "dtype": "float32", "cpu_ms_fwd_bwd": 1.0, "status": "ok"}
            for k, ms in [("mamba2", 0.1), ("gru", 0.2)] for n in (32, 128)]
    rows.append({**rows[0], "length": 4096, "status": "oom"})
    return pd.DataFrame(rows)


def test_sequence_scaling_axes_read_in_plain_numbers(tmp_path):
    fig = F.plot_sequence_scaling(_bench(), tmp_path / "seq.png")
    fig.canvas.draw()
    for ax in fig.axes:
        labels = [t.get_text() for t in [*ax.get_yticklabels(), *ax.get_yticklabels(minor=True)]
                  if t.get_text()]
        assert labels and not any("times" in s or "^" in s for s in labels), labels
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["32", "128"]
    bad = _bench().assign(status="error: x")
    with pytest.raises(ValueError, match="no successful measurement"):
        F.plot_sequence_scaling(bad, tmp_path / "bad.png")
    plt.close("all")


def test_reproduction_figure_and_html_table(tmp_path):
    runs = pd.DataFrame([("drama", g, i, s) for g, base in [("Alien", 820), ("Pong", -20)]
                         for i, s in enumerate([base - 5, base, base + 5])],
                        columns=S.COLUMNS)
    pg = R.reproduction_per_game(runs, "drama", R.load_drama_per_game())
    ag = R.reproduction_aggregates(runs, "drama", R.load_drama_aggregates(), reps=200)
    fig = F.plot_reproduction(pg, ag, tmp_path / "r.png")
    right = [t.get_text() for t in fig.axes[0].texts]
    assert right == list(pg["verdict"]) == ["reproduced", "no published value"]
    assert (tmp_path / "r.png").stat().st_size > 10_000 and (tmp_path / "r.pdf").exists()
    page = T.write_html_table(tmp_path / "t.html", "T <1>", ["Game", "Score", "Verdict"],
                              [["Pong", "**1.0**", "below"], ["Alien", "—", "reproduced"]],
                              note="n & m", verdict_column="Verdict").read_text()
    assert "<title>T &lt;1&gt;</title>" in page and "<b>1.0</b>" in page
    assert 'class="v-below"' in page and 'class="num"' in page and "n &amp; m" in page
    plt.close("all")
