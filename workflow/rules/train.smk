# One training run per (game, variant, seed): `python -m drama.train` into its run directory.
#
# Resume design: the declared outputs are the run's eval.parquet, which the trainer writes
# atomically once the run is complete, and its run_info.json (rewritten at every start and at
# the end, so a deleted one comes back). Snakemake deletes the declared outputs of a failed or
# interrupted job (and, with --rerun-incomplete, of a job it finds marked incomplete), never
# the rest of the run directory, so the checkpoints survive and rerunning the same command
# resumes the run from its last checkpoint (the trainer resumes when --out already holds one).
# Never declare the run directory itself (directory()) as an output: it would be wiped.
#
# Run directories are keyed by what produced them: results/runs/{SETTINGS}/..., SETTINGS =
# the preset, plus a short hash of the steps/trainer_overrides when they change anything
# (common.smk), so another grid (smoke vs paper) never reuses, deletes or refuses a run.


rule runs:
    """Every training run of the grid, without the analysis."""
    input:
        run_eval_files(),


# Threads and resources (GPU, memory, runtime) come from the profiles; `python` is the one on
# PATH (the venv or conda env the workflow runs in), so moving the venv changes no rule.
rule train:
    output:
        f"results/runs/{SETTINGS}/{{game}}/{{variant}}/seed{{seed}}/eval.parquet",
        f"results/runs/{SETTINGS}/{{game}}/{{variant}}/seed{{seed}}/run_info.json",
    log:
        f"results/logs/runs/{SETTINGS}/{{game}}/{{variant}}/seed{{seed}}/train.log",
    benchmark:
        f"results/benchmarks/runs/{SETTINGS}/{{game}}/{{variant}}/seed{{seed}}/train.tsv"
    conda:
        "../../environment.yml"
    params:
        out=subpath(output[0], parent=True),
        args=trainer_args(),
        # workstation: at most runs_per_gpu runs per GPU, each pinned to one GPU
        # (scripts/gpu_pin.sh; a no-op under SLURM and without GPUs)
        # relative to the working directory (the checkout): an absolute path here would mark
        # every run changed when the checkout moves (rerun-triggers: params)
        pin=f"scripts/gpu_pin.sh {config.get('runs_per_gpu', 1)} .snakemake/gpu_slots --",
    shell:
        # SLURM_JOB_ID (empty outside SLURM) goes into the log: provenance of where it ran.
        "(echo slurm_job_id=${{SLURM_JOB_ID:-none}} host=$(hostname);"
        " OMP_NUM_THREADS={threads} bash {params.pin} python -m drama.train"
        " --game {wildcards.game} --seed {wildcards.seed} --variant {wildcards.variant}"
        " --out {params.out} {params.args}) > {log} 2>&1"
