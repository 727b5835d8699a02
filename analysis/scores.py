"""Atari100k scores: the random/human table, loaders for every score source, normalisation.

Every loader returns the same *long* table, one row per (method, game, run)::

    method: str   # project variant ("drama", "uniform", ...) or published method name
    game:   str   # canonical Atari100k name, e.g. "MsPacman" (see ATARI100K_GAMES)
    run:    int   # seed / run index within (method, game)
    score:  float # raw (un-normalised) final score of that run

Sources:
- the project's ``results/scores.parquet`` (one row per run: game, variant, seed, score, ...);
  one method per variant;
- a run's per-episode ``eval.parquet`` (game, variant, seed, env_step, episode, return, length,
  final); the run's score is the mean return of its ``final`` episodes;
- published ``{game: [score per run]}`` JSON (DIAMOND, IRIS, STORM, ...); the method is the
  file stem;
- CURL's record list ``[{game, seed, HNS, Max HNS}]`` (already human-normalised: converted
  back to raw scores with the same random/human table, so every source is treated alike);
- DreamerV3-2024's training curves ``[{task, method, seed, xs, ys}]`` (xs: env frames): per
  seed, the mean return of the training episodes that end between 390k and 400k frames
  (both ends inclusive), seeds without such an episode are dropped (its authors' rule);
- means-only tables (the official Drama repo's ``atari_performance.csv``): one "run" per game.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

DATA_DIR = Path(__file__).resolve().parent / "data"
PUBLISHED_DIR = DATA_DIR / "published"
RANDOM_HUMAN_CSV = DATA_DIR / "atari100k_random_human.csv"

COLUMNS = ["method", "game", "run", "score"]

_TABLE = pd.read_csv(RANDOM_HUMAN_CSV)
assert list(_TABLE.columns[:3]) == ["game", "random", "human"], _TABLE.columns
#: The 26 Atari100k games, in the table's (alphabetical) order.
ATARI100K_GAMES: tuple[str, ...] = tuple(_TABLE["game"])
#: Random-agent and human scores (DQN Zoo, human_at30 / random) per game.
RANDOM_SCORES: dict[str, float] = {g: float(v) for g, v in _TABLE[["game", "random"]].values}
HUMAN_SCORES: dict[str, float] = {g: float(v) for g, v in _TABLE[["game", "human"]].values}
assert len(ATARI100K_GAMES) == 26, ATARI100K_GAMES

_KEYS = {re.sub(r"[^a-z]", "", g.lower()): g for g in ATARI100K_GAMES}

#: DreamerV3-2024 rule: training episodes that end in this frame window (inclusive).
DREAMERV3_FRAME_WINDOW = (390_000, 400_000)


def canonical_game(name: str) -> str:
    """Map a game name in any usual spelling to its canonical Atari100k name.

    Accepts "MsPacman", "ms_pacman", "ALE/MsPacman-v5", "MsPacmanNoFrameskip-v4",
    "atari_ms_pacman". Raises ValueError naming the valid games otherwise.
    """
    s = str(name)
    s = re.sub(r"^ALE/", "", s)
    s = re.sub(r"(NoFrameskip)?-v\d+$", "", s)
    s = re.sub(r"^atari_", "", s)
    key = re.sub(r"[^a-z]", "", s.lower())
    if key not in _KEYS:
        raise ValueError(f"unknown Atari100k game {name!r}; expected one of {ATARI100K_GAMES}")
    return _KEYS[key]


def _check_long(df: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: missing columns {missing}")
    if df.empty:
        raise ValueError(f"{source}: no scores")
    df = df[COLUMNS].copy()
    df["game"] = [canonical_game(g) for g in df["game"]]
    df["method"] = df["method"].astype(str)
    df["run"] = df["run"].astype(int)
    df["score"] = df["score"].astype(float)
    if not np.isfinite(df["score"]).all():
        bad = df[~np.isfinite(df["score"])].head(3).to_dict("records")
        raise ValueError(f"{source}: non-finite scores, e.g. {bad}")
    dup = df.duplicated(["method", "game", "run"])
    if dup.any():
        raise ValueError(f"{source}: duplicate (method, game, run) rows, e.g. "
                         f"{df[dup].head(3).to_dict('records')}")
    return df.sort_values(["method", "game", "run"], ignore_index=True)


def read_parquet(path: str | Path, what: str = "parquet file") -> pd.DataFrame:
    """``pd.read_parquet``, or a ValueError naming the file when it cannot be read (truncated,
    not parquet, unreadable) instead of a pyarrow traceback."""
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - pyarrow/OS errors, re-raised naming the file
        raise ValueError(f"{path}: cannot read this {what} ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:200]}); the file is truncated, damaged "
                         f"or not parquet") from None


def read_json(path: str | Path, what: str = "JSON file"):
    """Parse a JSON (or .json.gz) file, or a ValueError naming the file."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt") as f:
                return json.load(f)
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read this {what} ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:200]}); the file is truncated, damaged "
                         f"or not JSON") from None


def _read_columns(path: Path, need: list[str], what: str) -> pd.DataFrame:
    """Read a parquet file that must hold the columns ``need`` (``what`` names it in errors)."""
    df = read_parquet(path, what)
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: {what} need columns {need}; missing {missing}")
    return df


def load_project_scores(path: str | Path) -> pd.DataFrame:
    """Read the workflow's ``scores.parquet`` (one row per run) into the long table.

    Needs columns game, variant, seed, score; other (provenance) columns are ignored.
    Each variant becomes one method.
    """
    path = Path(path)
    df = _read_columns(path, ["game", "variant", "seed", "score"], "project scores")
    df = df.rename(columns={"variant": "method", "seed": "run"})
    return _check_long(df, str(path))


def score_from_eval_episodes(path: str | Path) -> pd.DataFrame:
    """One run's per-episode ``eval.parquet`` -> its one-row long table.

    The run's score is the mean return of the episodes flagged ``final``.
    """
    path = Path(path)
    df = _read_columns(path, ["game", "variant", "seed", "return", "final"], "eval episodes")
    fin = df[df["final"].astype(bool)]
    if fin.empty:
        raise ValueError(f"{path}: no episode has final=True")
    keys = fin[["game", "variant", "seed"]].drop_duplicates()
    if len(keys) != 1:
        raise ValueError(f"{path}: expected one run, found {len(keys)} (game, variant, seed)")
    game, variant, seed = keys.iloc[0]
    row = {"method": variant, "game": game, "run": seed, "score": fin["return"].mean()}
    return _check_long(pd.DataFrame([row]), str(path))


def load_published_json(path: str | Path, method: str | None = None) -> pd.DataFrame:
    """Read a published ``{game: [score per run]}`` JSON; the method defaults to the stem."""
    path = Path(path)
    data = read_json(path, "published scores")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a {{game: [scores]}} object, got {type(data).__name__}")
    rows = []
    for game, runs in data.items():
        if not isinstance(runs, list) or not runs:
            raise ValueError(f"{path}: game {game!r} needs a non-empty list of run scores")
        rows += [(method or path.stem, game, i, float(s)) for i, s in enumerate(runs)]
    return _check_long(pd.DataFrame(rows, columns=COLUMNS), str(path))


def load_curl_records(path: str | Path, method: str | None = None) -> pd.DataFrame:
    """Read CURL's ``[{game, seed, HNS, Max HNS}]`` records (final HNS, not the max).

    The records are already human-normalised; they are mapped back to raw scores with the
    project's random/human table (the same one that normalised them), so that the per-game
    table can show raw means and every source goes through one normalisation.
    """
    path = Path(path)
    recs = read_json(path, "published records")
    if not isinstance(recs, list) or not recs or "HNS" not in recs[0]:
        raise ValueError(f"{path}: expected a list of {{game, seed, HNS}} records")
    df = pd.DataFrame(recs)
    games = [canonical_game(g) for g in df["game"]]
    lo = np.array([RANDOM_SCORES[g] for g in games])
    hi = np.array([HUMAN_SCORES[g] for g in games])
    df = pd.DataFrame({"method": method or path.stem, "game": games,
                       "run": df["seed"].astype(int), "score": df["HNS"] * (hi - lo) + lo})
    return _check_long(df, str(path))


def load_dreamerv3_curves(path: str | Path, method: str | None = None,
                          window: tuple[int, int] = DREAMERV3_FRAME_WINDOW) -> pd.DataFrame:
    """DreamerV3-2024 curve records -> final scores with its authors' 390k-400k-frame rule.

    Per (task, seed): mean of the training-episode returns whose end frame x satisfies
    ``window[0] <= x <= window[1]``; a seed without such an episode is dropped, so games
    can end with different run counts (see ``aggregates`` for how that is handled).
    """
    path = Path(path)
    recs = read_json(path, "curve records")
    if not isinstance(recs, list) or not recs or "xs" not in recs[0]:
        raise ValueError(f"{path}: expected a list of {{task, method, seed, xs, ys}} records")
    name = method or _stem(path)
    rows, games = [], set()
    for r in recs:
        xs, ys = np.asarray(r["xs"], float), np.asarray(r["ys"], float)
        assert xs.shape == ys.shape, (xs.shape, ys.shape)
        game = canonical_game(r["task"])
        games.add(game)
        sel = (xs >= window[0]) & (xs <= window[1])
        if sel.any():
            rows.append((name, game, int(r["seed"]), float(ys[sel].mean())))
    df = _check_long(pd.DataFrame(rows, columns=COLUMNS), str(path))
    lost = games - set(df["game"])
    if lost:
        raise ValueError(f"{path}: no seed has an episode ending in {window} frames for {lost}")
    return df


def load_means_csv(path: str | Path, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a means-only table (rows: methods, columns: games), e.g. the official Drama repo's
    ``atari_performance.csv``. Each (method, game) becomes a single run (run 0).
    Rows named Random/Human are skipped unless listed in ``methods``.
    """
    path = Path(path)
    wide = pd.read_csv(path)
    key = wide.columns[0]
    games = [c for c in wide.columns if re.sub(r"[^a-z]", "", c.lower()) in _KEYS]
    if methods is None:
        methods = [m for m in wide[key] if m not in ("Random", "Human")]
    rows = []
    for m in methods:
        sel = wide[wide[key] == m]
        if sel.empty:
            raise ValueError(f"{path}: no row for method {m!r}; rows are {list(wide[key])}")
        rows += [(m, g, 0, float(sel.iloc[0][g])) for g in games]
    return _check_long(pd.DataFrame(rows, columns=COLUMNS), str(path))


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".json.gz", ".json", ".parquet", ".csv"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def load_scores(path: str | Path) -> pd.DataFrame:
    """Load any supported score file by its format (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"score file not found: {path}")
    name = path.name
    if name.endswith(".parquet"):
        cols = read_parquet(path, "score file").columns
        return score_from_eval_episodes(path) if "final" in cols else load_project_scores(path)
    if name.endswith(".json.gz"):
        return load_dreamerv3_curves(path)
    if name.endswith(".json"):
        head = read_json(path, "score file")
        if isinstance(head, dict):
            return load_published_json(path)
        if isinstance(head, list) and head and "HNS" in head[0]:
            return load_curl_records(path)
        if isinstance(head, list) and head and "xs" in head[0]:
            return load_dreamerv3_curves(path)
        raise ValueError(f"{path}: unrecognised JSON layout")
    if name.endswith(".csv"):
        return load_means_csv(path)
    raise ValueError(f"{path}: unsupported score file (want .parquet, .json, .json.gz, .csv)")


def load_all(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Concatenate several score files; a method may come from only one file."""
    frames = [load_scores(p) for p in paths]
    if not frames:
        raise ValueError("no score files given")
    df = pd.concat(frames, ignore_index=True)
    dup = df.duplicated(["method", "game", "run"])
    if dup.any():
        raise ValueError(f"method {df[dup]['method'].iloc[0]!r} appears in more than one file")
    return df


def published_path(name: str) -> Path:
    """Path of a shipped published file by method name or file name, e.g. "DIAMOND"."""
    for cand in (name, f"{name}.json", f"{name}.json.gz", f"{name}.csv"):
        p = PUBLISHED_DIR / cand
        if p.exists():
            return p
    have = sorted(_stem(p) for p in PUBLISHED_DIR.iterdir())
    raise FileNotFoundError(f"no published data named {name!r}; shipped: {have}")


def human_normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Add column ``hns`` = (score - random) / (human - random) to a long table."""
    lo = df["game"].map(RANDOM_SCORES)
    hi = df["game"].map(HUMAN_SCORES)
    if lo.isna().any():
        raise ValueError(f"no random/human scores for games {set(df['game'][lo.isna()])}")
    out = df.copy()
    out["hns"] = (df["score"] - lo) / (hi - lo)
    return out


def score_matrix(df: pd.DataFrame, method: str, games: Sequence[str] | None = None,
                 column: str = "hns") -> np.ndarray:
    """(runs x games) matrix of one method, NaN-padded where a game has fewer runs.

    Runs are stacked per game in run order (row i = the game's i-th run), so with equal run
    counts this is exactly the matrix rliable expects. ``games`` fixes the column order
    (default: the method's games in table order); a requested game with no run is an error.
    """
    sub = df[df["method"] == method]
    if sub.empty:
        raise ValueError(f"no scores for method {method!r}; have {sorted(df['method'].unique())}")
    if column not in sub.columns:
        raise ValueError(f"column {column!r} missing (call human_normalise first?)")
    if games is None:
        games = [g for g in ATARI100K_GAMES if g in set(sub["game"])]
    per_game = {g: v.sort_values("run")[column].to_numpy(float) for g, v in sub.groupby("game")}
    missing = [g for g in games if g not in per_game]
    if missing:
        raise ValueError(f"method {method!r} has no runs for games {missing}")
    n = max(len(per_game[g]) for g in games)
    mat = np.full((n, len(games)), np.nan)  # (runs, games)
    for j, g in enumerate(games):
        mat[: len(per_game[g]), j] = per_game[g]
    return mat


def load_curves(path: str | Path, allow_empty: bool = False) -> pd.DataFrame:
    """Read the workflow's ``curves.parquet`` (game, variant, seed, env_step, return: the mean
    return of one periodic evaluation) -> columns method, game, run, env_step, score, hns.

    No rows (runs without periodic evaluations: eval_every >= steps) is an error unless
    ``allow_empty``, which returns the empty table.
    """
    path = Path(path)
    df = _read_columns(path, ["game", "variant", "seed", "env_step", "return"], "curves")
    if df.empty and not allow_empty:
        raise ValueError(f"{path}: no curve points (no periodic evaluation in any run)")
    out = pd.DataFrame({"method": df["variant"].astype(str),
                        "game": [canonical_game(g) for g in df["game"]],
                        "run": df["seed"].astype(int), "env_step": df["env_step"].astype(int),
                        "score": df["return"].astype(float)})
    return human_normalise(out)
