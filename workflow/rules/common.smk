# Helpers shared by the rules: the run grid, trainer arguments and targets. Threads, memory,
# runtime and GPUs are in the profiles (profiles/default: GPU machines, profiles/cpu: CPU runs).
import shlex

import yaml
from snakemake.exceptions import WorkflowError

# The schema's enums are the single list of allowed games / variants / baselines; the wildcard
# constraints below are built from them so a path can only match a real grid cell.
with open(workflow.source_path("../schemas/config.schema.yaml")) as _f:
    SCHEMA = yaml.safe_load(_f)
ALL_GAMES = SCHEMA["properties"]["games"]["items"]["enum"]
ALL_VARIANTS = SCHEMA["properties"]["variants"]["items"]["enum"]

GAMES = config["games"]
SEEDS = config["seeds"]
VARIANTS = config["variants"]
# The variant compared with the published Drama results (Mamba-2 world model + DFS).
REPRODUCE = "drama"


wildcard_constraints:
    game="|".join(ALL_GAMES),
    variant="|".join(ALL_VARIANTS),
    seed=r"\d+",


def trainer_sets():
    """`--set key=value` overrides of every run: trainer_overrides, under the trainer's names."""
    return [f"{key}={value}" for key, value in config["trainer_overrides"].items()]


def _settings_key():
    """Resolve the grid's trainer settings with the trainer's own resolver (every variant)
    before any job starts, and name the results folder after them (drama.config.settings_key).
    """
    from drama.config import settings_key

    try:
        return settings_key(config["preset"], trainer_sets(), config["steps"], VARIANTS)
    except ValueError as e:
        raise WorkflowError(
            f"config: preset/steps/trainer_overrides rejected by drama.train: {e}"
        ) from None


# Runs of different presets, step counts or overrides never share a directory: the smoke grid
# and the paper grid live side by side (results/README.md).
SETTINGS = _settings_key()
RUNS = f"results/runs/{SETTINGS}"
# Where this grid's collected scores, tables, figures and analysis logs go (config "results":
# results/ for the paper and smoke grids, results/cpu_learning for the CPU learning check).
OUT = config["results"]


def run_dir(game, variant, seed):
    return f"{RUNS}/{game}/{variant}/seed{seed}"


def run_eval_files():
    """The eval.parquet of every run of the grid (the train rule's outputs)."""
    return expand(
        f"{RUNS}/{{game}}/{{variant}}/seed{{seed}}/eval.parquet",
        game=GAMES,
        variant=VARIANTS,
        seed=SEEDS,
    )


def checked_run_eval_files(wildcards):
    """run_eval_files(), after checking every run that already finished (analysis.collect):
    a damaged eval.parquet or run_info.json stops Snakemake here, naming the run, before the
    collect job would delete the previous scores.parquet and curves.parquet."""
    from analysis.collect import check_runs

    evals = run_eval_files()
    check_runs(evals, run_info_files())
    return evals


def run_info_files():
    """The run_info.json of every run of the grid (the train rule writes it with eval.parquet)."""
    return expand(
        f"{RUNS}/{{game}}/{{variant}}/seed{{seed}}/run_info.json",
        game=GAMES,
        variant=VARIANTS,
        seed=SEEDS,
    )


def _resolved_train():
    """The runs' train.* settings, as the trainer resolves them (drama.config)."""
    from drama.config import resolve_config

    cfg = resolve_config(
        GAMES[0], 0, VARIANTS[0], config["preset"], trainer_sets(), config["steps"]
    )
    return cfg.train


def run_steps():
    """Environment steps per run (for captions and tables)."""
    return int(_resolved_train().steps)


def run_eval_every():
    """Environment steps between periodic evaluations (for captions)."""
    return int(_resolved_train().eval_every)


def _set_args():
    """trainer_sets() as quoted `--set key=value` options."""
    return [
        a for assignment in trainer_sets() for a in ("--set", shlex.quote(assignment))
    ]


def trainer_args():
    """`python -m drama.train` options shared by every run of the grid."""
    args = ["--preset", config["preset"], "--device", config["device"]]
    if config["steps"] is not None:
        args += ["--steps", str(config["steps"])]
    return " ".join(args + _set_args())


def has_variants(*names):
    return all(n in VARIANTS for n in names)


# Ablation figures and the comparisons they need: (figure stem, variant, reference, title).
ABLATIONS = [
    ("ablation_dfs", "drama", "uniform", "DFS vs uniform replay sampling"),
    ("ablation_mamba", "drama", "mamba1", "Mamba-2 vs Mamba-1 world model"),
    ("ablation_corrected", "corrected", "drama", "Corrections vs official acting"),
]


def figure_stems():
    stems = ["reproduction"] if REPRODUCE in VARIANTS else []
    stems += [
        "aggregates",
        "performance_profiles",
        "sample_efficiency",
    ]
    if len(VARIANTS) >= 2:
        stems.append("probability_of_improvement")
    stems += [name for name, a, b, _ in ABLATIONS if has_variants(a, b)]
    if config["sequence_benchmark"]["enabled"]:
        stems.append("sequence_scaling")
    return stems


def all_targets():
    targets = [
        f"{OUT}/scores.parquet",
        f"{OUT}/curves.parquet",
        *expand(f"{OUT}/tables/per_game.{{ext}}", ext=["md", "csv", "tex", "html"]),
        *expand(f"{OUT}/tables/aggregates.{{ext}}", ext=["md", "json", "html"]),
        *expand(f"{OUT}/tables/costs.{{ext}}", ext=["md", "csv", "html"]),
    ]
    if REPRODUCE in VARIANTS:
        targets += expand(
            f"{OUT}/tables/reproduction.{{ext}}", ext=["md", "csv", "tex", "html"]
        )
        targets += [
            f"{OUT}/tables/reproduction_aggregates.csv",
            f"{OUT}/tables/reproduction_rates.html",
        ]
    targets += expand(
        f"{OUT}/figures/{{stem}}.{{ext}}", stem=figure_stems(), ext=["png", "pdf"]
    )
    if config["sequence_benchmark"]["enabled"]:
        targets.append(f"{OUT}/tables/sequence_speed.html")
    if config["random_episodes"] > 0:  # agent vs the random policy (learning.smk)
        targets += expand(f"{OUT}/tables/learning.{{ext}}", ext=["md", "csv", "html"])
        targets += expand(f"{OUT}/figures/learning_curves.{{ext}}", ext=["png", "pdf"])
    return targets


def sampled_eval_files():
    """Sampled-action evaluations of the final checkpoints (config sampled_episodes > 0): one
    file per run of the reproduced variant, made by the sampled_eval rule (learning.smk).
    """
    if config["sampled_episodes"] == 0:
        return []
    return expand(
        f"{OUT}/sampled/{{game}}/{REPRODUCE}/seed{{seed}}.parquet",
        game=GAMES,
        seed=SEEDS,
    )


def random_policy_args():
    """`python -m drama.random_policy` options: the grid's preset and trainer settings (their
    env.* protocol settings apply; the rest is resolved and checked, then unused)."""
    args = ["--preset", config["preset"], "--episodes", str(config["random_episodes"])]
    return " ".join(args + _set_args())


def ablation_pair(name):
    """[variant, reference, title] of an ablation figure."""
    for stem, variant, reference, title in ABLATIONS:
        if stem == name:
            return [variant, reference, title]
    raise ValueError(f"unknown ablation {name!r}")


def ablation_variants(wildcards):
    """[variant, reference] of the ablation figure being made (ablation rule parameter)."""
    return ablation_pair(wildcards.ablation)[:2]


def ablation_title(wildcards):
    return ablation_pair(wildcards.ablation)[2]


def sequence_benchmark_args():
    """benchmarks/sequence_speed.py options from config["sequence_benchmark"]."""
    sb = config["sequence_benchmark"]
    args = ["--kinds", *sb["kinds"], "--lengths", *map(str, sb["lengths"])]
    args += ["--batch", str(sb["batch_size"]), "--d-model", str(sb["d_model"])]
    if sb["repeats"] is not None:
        args += ["--repeats", str(sb["repeats"])]
    if config["device"] != "auto":  # auto: the script picks CUDA when available
        args += ["--device", config["device"]]
    return " ".join(args)


def openloop_variant():
    """The variant whose runs get a strip: the reproduced one if in the grid."""
    return REPRODUCE if REPRODUCE in VARIANTS else VARIANTS[0]


def openloop_targets():
    if not config["openloop_strips"]:
        return []
    return expand(f"{OUT}/openloop/{{game}}.png", game=GAMES)
