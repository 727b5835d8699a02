# All runs -> results/scores.parquet (one row per run) and results/curves.parquet.


# collect and the analysis rules (analysis.smk) are short (seconds to a minute): with a cluster
# executor they run on the submitting host instead of each paying SLURM scheduling and Snakemake
# start-up time. Only the training runs are cluster jobs.
localrules:
    collect,


rule collect:
    input:
        evals=checked_run_eval_files,
        infos=run_info_files(),
    output:
        scores=f"{OUT}/scores.parquet",
        curves=f"{OUT}/curves.parquet",
    log:
        f"{OUT}/logs/collect.log",
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/collect_runs.py"
