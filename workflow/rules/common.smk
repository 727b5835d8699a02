# Helpers shared by the rules: the run grid, trainer arguments, resources and targets.
import sys

import yaml

# The schema's enums are the single list of allowed games / variants / baselines; the wildcard
# constraints below are built from them so a path can only match a real grid cell.
with open(workflow.source_path("../schemas/config.schema.yaml")) as _f:
    SCHEMA = yaml.safe_load(_f)
ALL_GAMES = SCHEMA["properties"]["games"]["items"]["enum"]
ALL_VARIANTS = SCHEMA["properties"]["variants"]["items"]["enum"]

GAMES = config["games"]
SEEDS = config["seeds"]
VARIANTS = config["variants"]
# The interpreter running Snakemake also runs the trainer (same venv locally and in SLURM jobs).
PYTHON = sys.executable


wildcard_constraints:
    game="|".join(ALL_GAMES),
    variant="|".join(ALL_VARIANTS),
    seed=r"\d+",


# Per-run resource needs by preset. Profiles may override them (set-resources / set-threads);
# partition and account belong to the SLURM profile only.
#   atari100k: one GPU; the official code needs ~16 h per run on an A100, so 24 h plus
#   retries (each retry resumes from the run's checkpoint) covers slower cards.
#   debug: CPU-sized, one thread so that two runs share a 2-core machine.
TRAIN_RESOURCES = {
    "atari100k": {"threads": 4, "mem_mb": 32000, "runtime": 1440, "gpu": 1},
    "debug": {"threads": 1, "mem_mb": 4000, "runtime": 30, "gpu": 1},
}[config["preset"]]


def run_dir(game, variant, seed):
    return f"results/runs/{game}/{variant}/seed{seed}"


def run_eval_files():
    """The eval.parquet of every run of the grid (the train rule's outputs)."""
    return expand(
        "results/runs/{game}/{variant}/seed{seed}/eval.parquet",
        game=GAMES,
        variant=VARIANTS,
        seed=SEEDS,
    )


def trainer_args():
    """`python -m drama.train` options shared by every run of the grid."""
    args = ["--preset", config["preset"], "--device", config["device"]]
    if config["steps"] is not None:
        args += ["--steps", str(config["steps"])]
    overrides = {  # workflow config key -> trainer preset key (drama/presets.yaml)
        "train.final_eval_episodes": config["eval_episodes"],
        "train.eval_every": config["eval_every"],
        "train.eval_episodes": config["eval_periodic_episodes"],
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    overrides.update(config["trainer_overrides"])
    for key, value in overrides.items():
        args += ["--set", f"{key}={value}"]
    return " ".join(args)


def has_variants(*names):
    return all(n in VARIANTS for n in names)


# Ablation figures and the comparisons they need: (figure stem, variant, reference, title).
ABLATIONS = [
    ("ablation_dfs", "drama", "uniform", "DFS vs uniform replay sampling"),
    ("ablation_mamba", "drama", "mamba1", "Mamba-2 vs Mamba-1 world model"),
    ("ablation_corrected", "corrected", "drama", "Corrections vs official acting"),
]


def figure_stems():
    stems = [
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
        "results/scores.parquet",
        "results/curves.parquet",
        *expand("results/tables/per_game.{ext}", ext=["md", "csv", "tex"]),
        *expand("results/tables/aggregates.{ext}", ext=["md", "json"]),
        *expand("results/tables/costs.{ext}", ext=["md", "csv"]),
    ]
    targets += expand(
        "results/figures/{stem}.{ext}", stem=figure_stems(), ext=["png", "pdf"]
    )
    return targets


def ablation_pair(name):
    """[variant, reference, title] of an ablation figure."""
    for stem, variant, reference, title in ABLATIONS:
        if stem == name:
            return [variant, reference, title]
    raise ValueError(f"unknown ablation {name!r}")


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
