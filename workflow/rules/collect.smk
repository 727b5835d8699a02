# All runs -> results/scores.parquet (one row per run) and results/curves.parquet.


rule collect:
    input:
        evals=run_eval_files(),
    output:
        scores="results/scores.parquet",
        curves="results/curves.parquet",
    log:
        "results/logs/collect.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/collect_runs.py"
