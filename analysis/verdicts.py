"""Reproduction verdicts with measured error rates: the difference between our runs and a
published mean as a two-sample question, the rates of each verdict simulated from published
per-run data, and the seeds a grid needs.

Per game (raw scores; the margin in human-normalised units):

    d = mean(ours) - published mean
    interval  d -+ t_q * se
    se = sqrt(s_ours^2 / n + s_pub^2 / m)      n our runs, m published runs
    s_pub     the published runs' own standard deviation when they are available (Welch:
              Welch-Satterthwaite degrees of freedom, level ``level``); otherwise our runs'
              spread stands in for theirs (se = s_ours * sqrt(1/n + 1/m), n - 1 degrees of
              freedom, level ``level_means_only``)

Verdicts (checked in this order):

    below/above   the interval lies below/above zero
    reproduced    the interval (which contains zero) lies within [-margin, +margin]
    inconclusive  neither: too few runs or too much spread to tell

The margin is ``margin_hns`` x (human - random) of the game, or ``margin_relative`` x the
published value when that is larger. A difference the interval shows is reported even when it
is smaller than the margin (below/above first), so the power to call a shortfall of the
margin's size "below" is not capped by the equivalence rule.

Why these levels (measured by ``simulate_rates`` on the shipped per-run data, see
docs/analysis.md): Atari scores are skewed and heavy-tailed, and a run's mean and spread rise
together, so with our spread standing in for the published one a nominal 95% t interval calls a
perfect reproduction below/above on 8.7% of SPR's game draws at n = 5 (8.1% DrQ-eps, 8.2%
CURL); at 99% on 4.6% (3.8%, 3.5%). With both samples' spreads (Welch) the 95% interval already
stays under 5% (3.5%, 3.4%, 3.2%). The old rule (the published mean inside a 95%
percentile-bootstrap CI of our mean) made such a call on 30%.

Aggregates (mean, median, IQM HNS, games at or above human): our value minus the published one,
with the difference's interval from two independent stratified bootstraps: our runs, and the
published runs when available, otherwise m runs per game drawn from ours (our spread standing in
for theirs). Deviations from each point are scaled by sqrt(k / (k - 1)) (k runs resampled), the
bootstrap's small-sample variance deficit; the interval is the basic bootstrap one at
``level_aggregates``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd
from scipy import stats

from analysis.aggregates import metrics_batch, method_seed, run_counts
from analysis.scores import ATARI100K_GAMES, HUMAN_SCORES, RANDOM_SCORES, human_normalise
from analysis.scores import score_matrix

REPRODUCED, BELOW, ABOVE, INCONCLUSIVE = "reproduced", "below", "above", "inconclusive"
#: aggregate metrics compared, in order; the first three are human-normalised
AGG_METRICS = ("mean", "median", "iqm", "superhuman_games")
SHIFTS = (0.1, 0.25, 0.5)
RATE_COLUMNS = ["false_below", "false_above", "false_call", "inconclusive", "reproduced",
                *(f"power_{s:g}" for s in SHIFTS)]


@dataclass(frozen=True)
class Settings:
    """Settings of the verdict (config.yaml ``reproduction``)."""

    level: float = 0.95             # interval level when the published runs are available
    level_means_only: float = 0.99  # when only published means are (our spread for theirs)
    level_aggregates: float = 0.99  # aggregates' bootstrap interval of the difference
    margin_hns: float = 0.1         # equivalence margin, human-normalised
    margin_relative: float = 0.0    # or this fraction of the published value, if larger
    margin_games: float = 1.0       # equivalence margin of "games at or above human"
    published_runs: int = 5         # runs behind a published mean without its own count
    min_runs: int = 2               # fewer of our runs: "too few runs"

    def __post_init__(self):
        for name in ("level", "level_means_only", "level_aggregates"):
            v = getattr(self, name)
            if not 0.5 <= v < 1:
                raise ValueError(f"{name} must be in [0.5, 1), got {v}")
        for name in ("margin_hns", "margin_relative", "margin_games"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if int(self.published_runs) != self.published_runs or self.published_runs < 2:
            raise ValueError(f"published_runs must be an integer >= 2, got {self.published_runs}")
        if int(self.min_runs) != self.min_runs or self.min_runs < 2:
            raise ValueError(f"min_runs must be an integer >= 2, got {self.min_runs}")

    @classmethod
    def from_config(cls, cfg: dict | None) -> Settings:
        cfg = dict(cfg or {})
        names = {f.name for f in fields(cls)}
        unknown = set(cfg) - names - {"rates"}
        if unknown:
            raise ValueError(f"unknown reproduction settings {sorted(unknown)}; "
                             f"known: {sorted(names)}")
        return cls(**{k: v for k, v in cfg.items() if k in names})

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULTS = Settings()


# ------------------------------------------------------------------ the rule
def t_difference(mean_x, sd_x, n, pub_mean, m, sd_y=None, level: float = 0.99):
    """(d, low, high): the t interval of mean(ours) - published mean (arrays broadcast).

    ``sd_y`` None: our spread stands in for the published runs' (n - 1 degrees of freedom);
    else Welch's interval with Welch-Satterthwaite degrees of freedom.
    """
    mean_x, sd_x, pub_mean = (np.asarray(a, float) for a in (mean_x, sd_x, pub_mean))
    n, m = np.asarray(n, float), np.asarray(m, float)
    d = mean_x - pub_mean
    if sd_y is None:
        se = sd_x * np.sqrt(1 / n + 1 / m)
        df = n - 1
    else:
        vx, vy = sd_x ** 2 / n, np.asarray(sd_y, float) ** 2 / m
        se = np.sqrt(vx + vy)
        with np.errstate(divide="ignore", invalid="ignore"):
            df = (vx + vy) ** 2 / (vx ** 2 / (n - 1) + vy ** 2 / (m - 1))
        df = np.where(np.isfinite(df), df, n + m - 2)  # both spreads zero: se is zero anyway
    q = stats.t.ppf((1 + level) / 2, df)
    return d, d - q * se, d + q * se


def classify(low, high, margin):
    """Verdict per interval [low, high] of the difference, margin >= 0 (arrays broadcast)."""
    low, high, margin = np.broadcast_arrays(*(np.asarray(a, float) for a in (low, high, margin)))
    out = np.select([high < 0, low > 0, (low >= -margin) & (high <= margin)],
                    [BELOW, ABOVE, REPRODUCED], INCONCLUSIVE).astype(object)
    return out if out.ndim else str(out)


def margin_raw(game: str, published: float, s: Settings) -> float:
    """The game's equivalence margin in raw score units."""
    return max(s.margin_hns * (HUMAN_SCORES[game] - RANDOM_SCORES[game]),
               s.margin_relative * abs(published))


# ------------------------------------------------------------------ aggregates
def superhuman_batch(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Games at or above human of each resampled matrix x (B, runs, games) -> (B,)."""
    game_means = np.nansum(x, 1) / k  # (B, games)
    return (game_means >= 1.0 - 1e-9).sum(1).astype(float)


def agg_values(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """[mean, median, iqm, games >= human] of a batch x (B, runs, games) -> (B, 4)."""
    sh = superhuman_batch(x, k)
    return np.column_stack([metrics_batch(x.copy(), k)[:, :3], sh])


def _deviations(mat: np.ndarray, draw: int | None, reps: int, rs: np.random.RandomState,
                chunk: int = 2_000) -> np.ndarray:
    """Bootstrap deviations (reps, 4) of agg_values from their value on ``mat`` (runs x games,
    NaN-padded), drawing ``draw`` runs per game (default: each game's own count) with
    replacement, scaled by sqrt(k / (k - 1)) for the bootstrap's variance deficit."""
    k = run_counts(mat)
    g = mat.shape[1]
    rows = int(k.max()) if draw is None else int(draw)
    point = agg_values(mat[None], k)[0]
    cols = np.arange(g)
    out = []
    for start in range(0, reps, chunk):
        c = min(chunk, reps - start)
        if draw is None:
            idx = (rs.random_sample((c, rows, g)) * k).astype(int)  # game g: [0, k_g)
            x = mat[idx, cols]
            x[:, np.arange(rows)[:, None] >= k[None, :]] = np.nan
            kk = k
        else:
            idx = (rs.random_sample((c, rows, g)) * k).astype(int)
            x = mat[idx, cols]
            kk = np.full(g, rows)
        out.append(agg_values(x, kk))
    dev = np.concatenate(out) - point
    kmin = int(k.min())
    return dev * np.sqrt(kmin / (kmin - 1)) if kmin > 1 else dev


def aggregate_difference(ours: np.ndarray, published: np.ndarray, pub_runs: int,
                         pub_matrix: np.ndarray | None = None, reps: int = 2_000,
                         rng: int | np.random.RandomState = 0, level: float = 0.95,
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ours (4,), d, low, high) for [mean, median, iqm, games >= human].

    ours: (runs x games) HNS matrix; published: (4,) published values (NaN: none);
    pub_matrix: the published runs (HNS, same games) or None (m = pub_runs runs per game drawn
    from ours stand in for theirs).
    """
    rs = rng if isinstance(rng, np.random.RandomState) else np.random.RandomState(rng)
    k = run_counts(ours)
    point = agg_values(ours[None], k)[0]
    dev = _deviations(ours, None, reps, rs)
    dev_pub = (_deviations(pub_matrix, None, reps, rs) if pub_matrix is not None
               else _deviations(ours, pub_runs, reps, rs))
    delta = dev - dev_pub  # (reps, 4)
    alpha = 100 * (1 - level) / 2
    q_lo, q_hi = np.percentile(delta, [alpha, 100 - alpha], axis=0)
    d = point - np.asarray(published, float)
    return point, d, d - q_hi, d - q_lo


# ------------------------------------------------------------------ simulation
def _hns_runs(df: pd.DataFrame, game: str) -> np.ndarray:
    return df[df["game"] == game].sort_values("run")["hns"].to_numpy(float)


def _draw(n_avail: int, n: int, m: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, n + m) run indices: disjoint without replacement when there are enough runs,
    else with replacement."""
    if n + m <= n_avail:
        return np.argsort(rng.random((draws, n_avail)), axis=1)[:, : n + m]
    return rng.integers(0, n_avail, size=(draws, n + m))


def simulate_game(x: np.ndarray, game: str, n: int, m: int, draws: int,
                  rng: np.random.Generator, s: Settings, per_run: bool = False,
                  shifts: Sequence[float] = SHIFTS) -> dict[str, float]:
    """Rates of each verdict for one game's runs x (HNS): n drawn as ours, a disjoint m as the
    published ones (their mean only unless ``per_run``); ours shifted down by each shift."""
    idx = _draw(len(x), n, m, draws, rng)
    a, b = x[idx[:, :n]], x[idx[:, n:]]
    sa = a.std(1, ddof=1)
    sb = b.std(1, ddof=1) if per_run else None
    level = s.level if per_run else s.level_means_only
    span = HUMAN_SCORES[game] - RANDOM_SCORES[game]
    pub_raw = b.mean(1) * span + RANDOM_SCORES[game]
    margin = np.maximum(s.margin_hns, s.margin_relative * np.abs(pub_raw) / span)
    out = {}
    _, lo, hi = t_difference(a.mean(1), sa, n, b.mean(1), m, sb, level)
    v = classify(lo, hi, margin)
    out["false_below"] = float(np.mean(v == BELOW))
    out["false_above"] = float(np.mean(v == ABOVE))
    out["false_call"] = out["false_below"] + out["false_above"]
    out["inconclusive"] = float(np.mean(v == INCONCLUSIVE))
    out["reproduced"] = float(np.mean(v == REPRODUCED))
    for sh in shifts:
        _, lo, hi = t_difference(a.mean(1) - sh, sa, n, b.mean(1), m, sb, level)
        out[f"power_{sh:g}"] = float(np.mean(classify(lo, hi, margin) == BELOW))
    return out


def simulate_rates(df: pd.DataFrame, n: int, m: int | None = None, draws: int = 200,
                   seed: int = 0, settings: Settings = DEFAULTS, per_run: bool = False,
                   games: Sequence[str] | None = None, shifts: Sequence[float] = SHIFTS,
                   ) -> pd.DataFrame:
    """Per-game verdict rates of simulated reproductions from one method's per-run scores.

    ``df``: long score table of one method (``analysis.scores``); n our runs and m (default
    n) published runs per draw, disjoint when the game has n + m runs. Columns: game, then
    RATE_COLUMNS (fractions of draws); ``power_s``: calls "below" when ours is s lower (HNS).
    """
    if n < 2:
        raise ValueError(f"n must be >= 2 (a spread needs two runs), got {n}")
    m = n if m is None else m
    if m < 2 and per_run:
        raise ValueError(f"m must be >= 2 with per-run published data, got {m}")
    if df["method"].nunique() != 1:
        raise ValueError(f"one method at a time, got {sorted(df['method'].unique())}")
    df = df if "hns" in df.columns else human_normalise(df)
    games = [g for g in ATARI100K_GAMES if g in set(df["game"])] if games is None else games
    rows = []
    for g in games:
        rng = np.random.default_rng(method_seed(seed, f"sim/{g}/{n}/{m}"))
        x = _hns_runs(df, g)
        if len(x) < 2:
            raise ValueError(f"game {g} has {len(x)} run(s); simulating needs at least 2")
        rows.append({"game": g, **simulate_game(x, g, n, m, draws, rng, settings, per_run,
                                                 shifts)})
    return pd.DataFrame(rows)


def simulate_aggregate_rates(df: pd.DataFrame, n: int, m: int | None = None, draws: int = 100,
                             reps: int = 500, seed: int = 0, settings: Settings = DEFAULTS,
                             per_run: bool = False, shifts: Sequence[float] = SHIFTS,
                             ) -> pd.DataFrame:
    """The same rates for the aggregates (mean, median, IQM HNS, games >= human): per draw,
    n runs per game as ours and a disjoint m as the published ones, whose aggregate is the
    published value; ``power_s``: every game of ours s lower (HNS)."""
    m = n if m is None else m
    df = df if "hns" in df.columns else human_normalise(df)
    method = df["method"].iloc[0]
    mat = score_matrix(df, method)  # (runs, games)
    k = run_counts(mat)
    rng = np.random.default_rng(method_seed(seed, f"simagg/{n}/{m}"))
    rs = np.random.RandomState(method_seed(seed, f"simagg-boot/{n}/{m}"))
    margins = np.array([settings.margin_hns] * 3 + [settings.margin_games])
    level = settings.level_aggregates
    verdicts = {key: [] for key in ["null", *(f"power_{s:g}" for s in shifts)]}
    for _ in range(draws):
        cols = [_draw(int(kg), n, m, 1, rng)[0] for kg in k]
        a = np.column_stack([mat[c[:n], j] for j, c in enumerate(cols)])
        b = np.column_stack([mat[c[n:], j] for j, c in enumerate(cols)])
        pub = agg_values(b[None], np.full(b.shape[1], m))[0]
        for key in verdicts:
            sh = 0.0 if key == "null" else float(key.split("_")[1])
            _, _, lo, hi = aggregate_difference(a - sh, pub, m, b if per_run else None,
                                                reps, rs, level)
            verdicts[key].append(classify(lo, hi, margins))
    null = np.array(verdicts["null"])  # (draws, 4)
    rows = []
    for j, metric in enumerate(AGG_METRICS):
        r = {"metric": metric, "false_below": float(np.mean(null[:, j] == BELOW)),
             "false_above": float(np.mean(null[:, j] == ABOVE))}
        r["false_call"] = r["false_below"] + r["false_above"]
        r["inconclusive"] = float(np.mean(null[:, j] == INCONCLUSIVE))
        r["reproduced"] = float(np.mean(null[:, j] == REPRODUCED))
        for sh in shifts:
            r[f"power_{sh:g}"] = float(np.mean(np.array(verdicts[f"power_{sh:g}"])[:, j]
                                               == BELOW))
        rows.append(r)
    return pd.DataFrame(rows)


def summarise(per_game: pd.DataFrame) -> dict[str, float]:
    """Rates over all game draws (every game has the same number of draws)."""
    return {c: float(per_game[c].mean()) for c in RATE_COLUMNS if c in per_game}


# ------------------------------------------------------------------ seeds planner
def seeds_needed(df: pd.DataFrame, delta: float, m: int, power: float = 0.8,
                 candidates: Sequence[int] = tuple(range(2, 31)), draws: int = 200,
                 seed: int = 0, settings: Settings = DEFAULTS, per_run: bool = False,
                 ) -> pd.DataFrame:
    """Per game: the smallest n in ``candidates`` whose simulated power to call "below" a
    shift of ``delta`` (HNS) reaches ``power`` (NaN: none does), and the power at that n (or
    at the largest candidate)."""
    df = df if "hns" in df.columns else human_normalise(df)
    games = [g for g in ATARI100K_GAMES if g in set(df["game"])]
    rows = []
    for g in games:
        x = _hns_runs(df, g)
        found, p = np.nan, np.nan
        for n in candidates:
            rng = np.random.default_rng(method_seed(seed, f"plan/{g}/{n}/{m}"))
            p = simulate_game(x, g, n, m, draws, rng, settings, per_run, (delta,))[
                f"power_{delta:g}"]
            if p >= power:
                found = n
                break
        rows.append({"game": g, "runs_available": len(x), "seeds": found, "power": p})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ the old rule, measured
def interval_coverage(df: pd.DataFrame, n: int, m: int | None = None, draws: int = 200,
                      reps: int = 1_000, seed: int = 0, level: float = 0.95,
                      games: Sequence[str] | None = None) -> dict[str, float]:
    """How the old rule and plain intervals fare on one method's per-run scores, n runs
    drawn per game (and a disjoint m, default n, as the "published" runs):

    percentile_coverage  a ``level`` percentile-bootstrap CI of the mean of n runs contains
                         the mean of all the game's runs
    t_coverage           the same for the t interval
    old_rule_reproduced  the mean of the m published runs lies inside that percentile CI
                         (the old "reproduced" verdict on a perfect reproduction)
    """
    m = n if m is None else m
    df = df if "hns" in df.columns else human_normalise(df)
    games = [g for g in ATARI100K_GAMES if g in set(df["game"])] if games is None else games
    alpha = 100 * (1 - level) / 2
    q = stats.t.ppf((1 + level) / 2, n - 1)
    pc, tc, old = [], [], []
    for g in games:
        rng = np.random.default_rng(method_seed(seed, f"cover/{g}/{n}/{m}"))
        x = _hns_runs(df, g)
        idx = _draw(len(x), n, m, draws, rng)
        a, b = x[idx[:, :n]], x[idx[:, n:]]
        boot = a[np.arange(draws)[:, None, None], rng.integers(0, n, (draws, reps, n))].mean(2)
        lo, hi = np.percentile(boot, [alpha, 100 - alpha], axis=1)
        mu = x.mean()
        pc.append((lo <= mu) & (mu <= hi))
        half = q * a.std(1, ddof=1) / np.sqrt(n)
        tc.append(np.abs(a.mean(1) - mu) <= half)
        pub = b.mean(1)
        old.append((lo <= pub) & (pub <= hi))
    return {"percentile_coverage": float(np.mean(pc)), "t_coverage": float(np.mean(tc)),
            "old_rule_reproduced": float(np.mean(old))}
