"""Snakemake adapter: the paper's per-game table (Markdown, CSV, LaTeX) via analysis.tables."""

import sys

import analysis_path  # noqa: F401 (sys.path: this checkout's analysis/)
from analysis.scores import load_all, published_path
from analysis.tables import write_per_game_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = open(sm.log[0], "w")

df = load_all([sm.input.scores, *(published_path(b) for b in sm.params.baselines)])
write_per_game_table(
    df,
    variants=sm.params.variants,
    baselines=sm.params.baselines,
    out_md=sm.output.md,
    out_csv=sm.output.csv,
    out_tex=sm.output.tex,
    games=sm.params.games,
    out_html=sm.output.html,
)
