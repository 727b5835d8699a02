# Paper outputs from the collected runs: tables (results/tables/) and figures
# (results/figures/, PNG + PDF). Each script is a short adapter over the analysis library.
# Local rules: run by the submitting Snakemake process even with --profile slurm (see collect.smk).


localrules:
    per_game_table,
    aggregates,
    performance_profiles,
    probability_of_improvement,
    ablation,
    sample_efficiency,
    cost_table,
    sequence_scaling,


rule per_game_table:
    input:
        scores="results/scores.parquet",
    output:
        md="results/tables/per_game.md",
        csv="results/tables/per_game.csv",
        tex="results/tables/per_game.tex",
    log:
        "results/logs/tables/per_game.log",
    conda:
        "../../environment.yml"
    params:
        baselines=config["baselines"],
        variants=VARIANTS,
        games=GAMES,
        reps=config["bootstrap"]["reps"],
        seed=config["bootstrap"]["seed"],
    script:
        "../scripts/per_game_table.py"


rule aggregates:
    input:
        scores="results/scores.parquet",
    output:
        md="results/tables/aggregates.md",
        json="results/tables/aggregates.json",
        png=report(
            "results/figures/aggregates.png",
            caption="../report/aggregates.rst",
            category="Aggregates",
        ),
        pdf="results/figures/aggregates.pdf",
    log:
        "results/logs/figures/aggregates.log",
    conda:
        "../../environment.yml"
    params:
        baselines=config["baselines"],
        variants=VARIANTS,
        games=GAMES,
        reps=config["bootstrap"]["reps"],
        seed=config["bootstrap"]["seed"],
    script:
        "../scripts/aggregates.py"


rule performance_profiles:
    input:
        scores="results/scores.parquet",
    output:
        png=report(
            "results/figures/performance_profiles.png",
            caption="../report/performance_profiles.rst",
            category="Aggregates",
        ),
        pdf="results/figures/performance_profiles.pdf",
    log:
        "results/logs/figures/performance_profiles.log",
    conda:
        "../../environment.yml"
    params:
        baselines=config["baselines"],
        variants=VARIANTS,
        games=GAMES,
        reps=config["bootstrap"]["poi_reps"],
        seed=config["bootstrap"]["seed"],
    script:
        "../scripts/performance_profiles.py"


rule probability_of_improvement:
    input:
        scores="results/scores.parquet",
    output:
        png=report(
            "results/figures/probability_of_improvement.png",
            caption="../report/probability_of_improvement.rst",
            category="Aggregates",
        ),
        pdf="results/figures/probability_of_improvement.pdf",
    log:
        "results/logs/figures/probability_of_improvement.log",
    conda:
        "../../environment.yml"
    params:
        baselines=config["baselines"],
        variants=VARIANTS,
        games=GAMES,
        reps=config["bootstrap"]["poi_reps"],
        seed=config["bootstrap"]["seed"],
    script:
        "../scripts/probability_of_improvement.py"


rule ablation:
    input:
        scores="results/scores.parquet",
    output:
        png=report(
            "results/figures/{ablation}.png",
            caption="../report/ablation.rst",
            category="Ablations",
        ),
        pdf="results/figures/{ablation}.pdf",
    log:
        "results/logs/figures/{ablation}.log",
    wildcard_constraints:
        ablation="|".join(a[0] for a in ABLATIONS),
    conda:
        "../../environment.yml"
    params:
        pair=lambda wc: ablation_pair(wc.ablation)[:2],
        title=lambda wc: ablation_pair(wc.ablation)[2],
        reps=config["bootstrap"]["reps"],
        seed=config["bootstrap"]["seed"],
    script:
        "../scripts/ablation.py"


rule sample_efficiency:
    input:
        curves="results/curves.parquet",
    output:
        png=report(
            "results/figures/sample_efficiency.png",
            caption="../report/sample_efficiency.rst",
            category="Learning curves",
        ),
        pdf="results/figures/sample_efficiency.pdf",
    log:
        "results/logs/figures/sample_efficiency.log",
    conda:
        "../../environment.yml"
    params:
        variants=VARIANTS,
        reps=config["bootstrap"]["poi_reps"],
        seed=config["bootstrap"]["seed"],
    script:
        "../scripts/sample_efficiency.py"


rule cost_table:
    input:
        scores="results/scores.parquet",
    output:
        md="results/tables/costs.md",
        csv="results/tables/costs.csv",
    log:
        "results/logs/tables/costs.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/cost_table.py"
