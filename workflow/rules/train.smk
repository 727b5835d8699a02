# One training run per (game, variant, seed): `python -m drama.train` into its run directory.
#
# Resume design: the declared output is the run's eval.parquet ONLY, which the trainer writes
# atomically once the run is complete. Snakemake deletes the declared outputs of a failed or
# interrupted job (and, with --rerun-incomplete, of a job it finds marked incomplete), never
# the rest of the run directory, so the checkpoints survive and rerunning the same command
# resumes the run from its last checkpoint (the trainer resumes when --out already holds one).
# Never declare the run directory itself (directory()) as an output: it would be wiped.


rule train:
    output:
        "results/runs/{game}/{variant}/seed{seed}/eval.parquet",
    log:
        "results/logs/runs/{game}/{variant}/seed{seed}/train.log",
    benchmark:
        "results/benchmarks/runs/{game}/{variant}/seed{seed}/train.tsv"
    conda:
        "../../environment.yml"
    threads: TRAIN_RESOURCES["threads"]
    resources:
        gpu=TRAIN_RESOURCES["gpu"],
        mem_mb=TRAIN_RESOURCES["mem_mb"],
        runtime=TRAIN_RESOURCES["runtime"],
    params:
        out=lambda wc: run_dir(wc.game, wc.variant, wc.seed),
        args=trainer_args(),
        python=PYTHON,
        # workstation: at most runs_per_gpu runs per GPU, each pinned to one GPU
        # (scripts/gpu_pin.sh; a no-op under SLURM and without GPUs)
        pin=f"{workflow.basedir}/scripts/gpu_pin.sh {config.get('runs_per_gpu', 1)}"
        f" .snakemake/gpu_slots --",
    shell:
        # SLURM_JOB_ID (empty outside SLURM) goes into the log: provenance of where it ran.
        "(echo slurm_job_id=${{SLURM_JOB_ID:-none}} host=$(hostname);"
        " OMP_NUM_THREADS={threads} bash {params.pin} {params.python} -m drama.train"
        " --game {wildcards.game} --seed {wildcards.seed} --variant {wildcards.variant}"
        " --out {params.out} {params.args}) > {log} 2>&1"
