"""Paper tables: per-game scores (Markdown, CSV, LaTeX, HTML), aggregate summary, compute cost,
and the reproduction table (our runs against the published numbers, with verdicts).

Every table also comes as a standalone HTML page (``write_html_table``) so that the Snakemake
report shows it as a table.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.aggregates import METRICS, point_estimates, superhuman_games
from analysis.scores import ATARI100K_GAMES, HUMAN_SCORES, RANDOM_SCORES, human_normalise
from analysis.scores import score_matrix

AGG_ROWS = {  # label, higher-is-better
    "superhuman_games": ("#Superhuman (>= human)", True),
    "mean": ("Mean HNS", True),
    "median": ("Median HNS", True),
    "iqm": ("IQM HNS", True),
    "optimality_gap": ("Optimality gap", False),
}
DASH = "—"


def _table_games(df: pd.DataFrame, variants: Sequence[str], games: Sequence[str] | None):
    if games is not None:
        return list(games)
    if not variants:
        return list(ATARI100K_GAMES)
    sets = [set(df[df["method"] == v]["game"]) for v in variants]
    if sets[0] != set.union(*sets):
        raise ValueError(f"variants {list(variants)} cover different games; pass games=")
    return [g for g in ATARI100K_GAMES if g in sets[0]]


def per_game_frame(df: pd.DataFrame, variants: Sequence[str], baselines: Sequence[str] = (),
                   games: Sequence[str] | None = None) -> pd.DataFrame:
    """Numbers of the per-game table: rows games + aggregate rows, columns
    (method, "mean"|"std"). Random and Human come from the project's table.

    Aggregates are point estimates (rliable metrics) over the table's games: a method missing
    one of them gets NaN there. Default games: the variants' games (all 26 without variants).
    """
    for m in [*variants, *baselines]:
        if m not in set(df["method"]):
            raise ValueError(f"no scores for method {m!r}; have {sorted(df['method'].unique())}")
    games = _table_games(df, variants, games)
    df = human_normalise(df[df["game"].isin(games)])
    ref = pd.DataFrame([(name, g, 0, table[g]) for name, table in
                        (("Random", RANDOM_SCORES), ("Human", HUMAN_SCORES)) for g in games],
                       columns=["method", "game", "run", "score"])
    df = pd.concat([human_normalise(ref), df], ignore_index=True)
    methods = ["Random", "Human", *baselines, *variants]
    cols = pd.MultiIndex.from_product([methods, ["mean", "std"]])
    out = pd.DataFrame(np.nan, index=[*games, *AGG_ROWS], columns=cols)
    for m in methods:
        sub = df[df["method"] == m]
        stats = sub.groupby("game")["score"].agg(["mean", "std"])
        for g in stats.index:
            out.loc[g, (m, "mean")] = stats.loc[g, "mean"]
            out.loc[g, (m, "std")] = stats.loc[g, "std"] if m in variants else np.nan
        if set(sub["game"]) >= set(games):
            mat = score_matrix(df, m, games)  # (runs, games) HNS
            pts = point_estimates(mat)
            for i, name in enumerate(METRICS):
                out.loc[name, (m, "mean")] = pts[i]
            out.loc["superhuman_games", (m, "mean")] = superhuman_games(np.nanmean(mat, 0))
    out.index.name = "game"
    return out


def _best(values: pd.Series, higher: bool) -> set:
    v = values.dropna()
    if v.empty:
        return set()
    top = v.max() if higher else v.min()
    return set(v.index[np.isclose(v, top, rtol=1e-9, atol=0)])


def _fmt(x: float, digits: int) -> str:
    return DASH if pd.isna(x) else f"{x:,.{digits}f}"


def _cells(frame: pd.DataFrame, variants: Sequence[str], latex: bool) -> list[list[str]]:
    methods = list(dict.fromkeys(frame.columns.get_level_values(0)))
    contenders = [m for m in methods if m not in ("Random", "Human")]
    pm = r"$\pm$" if latex else "±"
    rows = []
    for key in frame.index:
        is_agg = key in AGG_ROWS
        label, higher = AGG_ROWS[key] if is_agg else (key, True)
        digits = 0 if key == "superhuman_games" else (3 if is_agg else 1)
        best = _best(frame.loc[key, (contenders, "mean")].droplevel(1), higher)
        row = [label]
        for m in methods:
            mu, sd = frame.loc[key, (m, "mean")], frame.loc[key, (m, "std")]
            s = _fmt(mu, digits)
            if m in variants and not is_agg and not pd.isna(sd):
                s = f"{s} {pm} {_fmt(sd, 1)}"
            if m in best:
                s = rf"\textbf{{{s}}}" if latex else f"**{s}**"
            row.append(s)
        rows.append(row)
    return rows


def write_per_game_table(df: pd.DataFrame, variants: Sequence[str], baselines: Sequence[str],
                         out_md: str | Path, out_csv: str | Path, out_tex: str | Path,
                         games: Sequence[str] | None = None,
                         out_html: str | Path | None = None) -> pd.DataFrame:
    """Write the paper's per-game table as Markdown, CSV and LaTeX; return its numbers.

    Args:
        df: long score table holding the variants and baselines (``scores.load_all``).
        variants: project variants, shown as mean ± std over seeds (sample std, ddof=1).
        baselines: published methods, shown as per-game means.
        out_md, out_csv, out_tex: output paths. CSV holds raw numbers (columns
            ``<method>_mean``/``<method>_std``); Markdown/LaTeX bold the best mean per game
            among baselines and variants and the best aggregate (lowest optimality gap).
        games: table rows (default: the variants' games; all 26 without variants).
        out_html: optional standalone HTML page of the Markdown table (for the report).
    """
    frame = per_game_frame(df, variants, baselines, games)
    methods = list(dict.fromkeys(frame.columns.get_level_values(0)))
    flat = frame.copy()
    flat.columns = [f"{m}_{s}" for m, s in frame.columns]
    flat = flat.dropna(axis=1, how="all")
    mkparent(out_csv)
    flat.to_csv(out_csv, float_format="%.6g")

    header = ["Game", *methods]
    md = [md_row(header), md_row(["---"] + ["---:"] * len(methods))]
    md += [md_row(r) for r in _cells(frame, variants, latex=False)]
    note = (f"Scores: mean over runs (variants: mean ± std over seeds). Aggregates: "
            f"human-normalised (HNS) point estimates over the {len(frame) - len(AGG_ROWS)} games "
            f"shown; {DASH}: method lacks a game.")
    mkparent(out_md)
    Path(out_md).write_text("\n".join(md) + f"\n\n{note}\n")
    if out_html is not None:
        write_html_table(out_html, "Per-game scores", header,
                         _cells(frame, variants, latex=False), note=note,
                         rules_after=[len(frame) - len(AGG_ROWS) - 1])

    tex_rows = _cells(frame, variants, latex=True)
    n_games = len(frame) - len(AGG_ROWS)
    body = [" & ".join(tex_escape(c) for c in header) + r" \\", r"\midrule"]
    for i, r in enumerate(tex_rows):
        if i == n_games:
            body.append(r"\midrule")
        body.append(" & ".join(tex_escape(c) for c in r) + r" \\")
    tex = "\n".join([r"\begin{tabular}{l" + "r" * len(methods) + "}", r"\toprule", *body,
                     r"\bottomrule", r"\end{tabular}"])
    mkparent(out_tex)
    Path(out_tex).write_text(f"% {note}\n% needs \\usepackage{{booktabs}}\n{tex}\n")
    return frame


def md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def tex_escape(s: str) -> str:
    if s.startswith(("\\textbf", "$")) or "$\\pm$" in s:
        return s.replace("#", r"\#").replace("%", r"\%").replace("—", "--")
    return s.replace("_", r"\_").replace("#", r"\#").replace("%", r"\%").replace("—", "--")


def mkparent(path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)


def aggregate_frame(agg: Mapping[str, Mapping]) -> pd.DataFrame:
    """``aggregates.aggregate`` output -> readable frame: 'point [low, high]' per metric."""
    rows = []
    for m, r in agg.items():
        runs = str(r["runs"]) if r.get("runs_min", r["runs"]) == r["runs"] else \
            f"{r['runs_min']}-{r['runs']}"
        row = {"method": m, "games": r.get("games", ""), "runs": runs,
               "superhuman": r["superhuman_games"]}
        for name in METRICS:
            p, lo, hi = r[name]
            row[name] = f"{p:.3f} [{lo:.3f}, {hi:.3f}]"
        rows.append(row)
    return pd.DataFrame(rows)


def write_aggregate_table(agg: Mapping[str, Mapping], out_md: str | Path | None = None,
                          out_json: str | Path | None = None,
                          out_html: str | Path | None = None, note: str = "") -> str:
    """Render aggregates (95% CIs) as a Markdown table; optionally write it, the JSON and/or a
    standalone HTML page (``note`` goes under the HTML table)."""
    frame = aggregate_frame(agg)
    if out_html is not None:
        write_html_table(out_html, "Aggregate human-normalised scores (95% CIs)",
                         list(frame.columns), [[str(v) for v in r] for r in
                                               frame.itertuples(index=False)], note=note)
    text = "\n".join([md_row(frame.columns), md_row(["---"] * len(frame.columns)),
                      *(md_row(str(v) for v in r) for r in frame.itertuples(index=False))])
    if out_md is not None:
        mkparent(out_md)
        Path(out_md).write_text(text + "\n")
    if out_json is not None:
        mkparent(out_json)
        Path(out_json).write_text(json.dumps(agg, indent=2) + "\n")
    return text


def load_run_infos(paths: Iterable[str | Path]) -> list[dict]:
    """Read each run's ``run_info.json``."""
    out = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"run_info not found: {p}")
        out.append(json.loads(p.read_text()))
    return out


def is_gpu_device(device: str) -> bool:
    """A run counts towards GPU-hours unless its recorded device is the CPU."""
    return not str(device).lower().startswith("cpu")


def cost_frame(run_infos: Sequence[Mapping] | pd.DataFrame) -> pd.DataFrame:
    """Per (variant, device): runs, env steps, wall time per run (h, mean and std),
    GPU-hours per run and in total (1 GPU per run; 0 for CPU runs)."""
    df = pd.DataFrame(list(run_infos)) if not isinstance(run_infos, pd.DataFrame) else run_infos
    need = ["variant", "game", "seed", "wall_time_s", "device", "env_steps"]
    missing = [c for c in need if c not in df.columns]
    if df.empty or missing:
        raise ValueError(f"run_info records need keys {need}; missing {missing or 'all (empty)'}")
    df = df.assign(hours=df["wall_time_s"].astype(float) / 3600.0)
    df["gpu_hours"] = np.where([is_gpu_device(d) for d in df["device"]], df["hours"], 0.0)
    g = df.groupby(["variant", "device"], sort=True)
    out = pd.DataFrame({
        "runs": g.size(),
        "games": g["game"].nunique(),
        "env_steps": g["env_steps"].agg(lambda s: "/".join(str(int(v)) for v in sorted(set(s)))),
        "wall_h_mean": g["hours"].mean(),
        "wall_h_std": g["hours"].std(),
        "gpu_h_per_run": g["gpu_hours"].mean(),
        "gpu_h_total": g["gpu_hours"].sum(),
    }).reset_index()
    return out


def write_cost_table(run_infos: Sequence[Mapping] | pd.DataFrame, out_md: str | Path,
                     out_csv: str | Path, out_html: str | Path | None = None) -> pd.DataFrame:
    """Write the cost table (Markdown + CSV) from run_info dicts or a DataFrame of them."""
    frame = cost_frame(run_infos)
    mkparent(out_csv)
    frame.to_csv(out_csv, index=False, float_format="%.6g")
    header = ["Variant", "Device", "Runs", "Games", "Env steps", "Wall time / run (h)",
              "GPU-h / run", "GPU-h total"]
    lines = [md_row(header), md_row(["---"] * 4 + ["---:"] * 4)]
    for r in frame.itertuples(index=False):
        wall = f"{r.wall_h_mean:.2f}" + ("" if pd.isna(r.wall_h_std) else f" ± {r.wall_h_std:.2f}")
        lines.append(md_row([r.variant, str(r.device), str(r.runs), str(r.games),
                              str(r.env_steps), wall, f"{r.gpu_h_per_run:.2f}",
                              f"{r.gpu_h_total:.2f}"]))
    note = "GPU-hours: wall time x 1 GPU for runs whose device is not the CPU."
    mkparent(out_md)
    Path(out_md).write_text("\n".join(lines) + f"\n\n{note}\n")
    if out_html is not None:
        rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
        write_html_table(out_html, "Compute cost", header, rows, note=note)
    return frame


# ------------------------------------------------------------------ HTML
_CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 1.2em; color: #222; }
h1 { font-size: 1.25em; margin: 0 0 .6em 0; }
table { border-collapse: collapse; font-size: .9em; }
th, td { padding: .3em .7em; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { background: #f0f0f0; text-align: left; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.rule td { border-bottom: 2px solid #888; }
td.v-reproduced { background: #d9f0d3; } td.v-below { background: #fddbc7; }
td.v-above { background: #d1e5f0; } td.v-missing { color: #777; }
td.wrap { white-space: normal; min-width: 16em; max-width: 30em; }
p.note { font-size: .85em; color: #444; max-width: 60em; }
"""
_NUMERIC = re.compile(r"^[\s*−\-+]*[\d,.]+")


def _html_cell(text: str, verdict_col: bool) -> str:
    cls = []
    if verdict_col:
        cls.append("v-" + (text if text in ("reproduced", "below", "above") else "missing"))
    elif _NUMERIC.match(text) or text == DASH:
        cls.append("num")
    elif len(text) > 40:
        cls.append("wrap")
    body = html.escape(text)
    body = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", body)  # Markdown bold -> <b>
    attr = f' class="{" ".join(cls)}"' if cls else ""
    return f"<td{attr}>{body}</td>"


def write_html_table(path: str | Path, title: str, header: Sequence[str],
                     rows: Sequence[Sequence[str]], note: str = "",
                     rules_after: Sequence[int] = (), verdict_column: str | None = None) -> Path:
    """A standalone HTML page with one table (``**x**`` cells in bold), for the report.

    ``rules_after``: row indices followed by a heavier rule; ``verdict_column``: the header of
    a column whose cells are coloured by verdict.
    """
    vcol = list(header).index(verdict_column) if verdict_column in header else -1
    lines = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", "<table>", "<thead><tr>"
             + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for i, r in enumerate(rows):
        assert len(r) == len(header), (r, header)
        cls = ' class="rule"' if i in rules_after else ""
        lines.append(f"<tr{cls}>" + "".join(_html_cell(str(c), j == vcol)
                                            for j, c in enumerate(r)) + "</tr>")
    lines.append("</tbody></table>")
    if note:
        lines.append(f'<p class="note">{html.escape(note)}</p>')
    lines.append("</body></html>")
    path = Path(path)
    mkparent(path)
    path.write_text("\n".join(lines) + "\n")
    return path
