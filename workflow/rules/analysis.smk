# Paper outputs from the collected runs: tables (results/tables/: Markdown, CSV, LaTeX and an
# HTML page for the report) and figures (results/figures/, PNG + PDF). Each script is a short
# adapter over the analysis library; all run in the small analysis conda env (no torch).
# Report categories are numbered so that the report lists them in reading order.
# Local rules: run by the submitting Snakemake process even with --profile slurm (see collect.smk).


localrules:
    reproduction,
    per_game_table,
    aggregates,
    performance_profiles,
    probability_of_improvement,
    ablation,
    sample_efficiency,
    cost_table,
    sequence_scaling,


rule reproduction:
    input:
        scores="results/scores.parquet",
    output:
        md="results/tables/reproduction.md",
        csv="results/tables/reproduction.csv",
        tex="results/tables/reproduction.tex",
        rst="results/tables/reproduction.rst",
        html=report(
            "results/tables/reproduction.html",
            caption="../report/reproduction_table.rst",
            category="1. Reproduction",
        ),
        png=report(
            "results/figures/reproduction.png",
            caption="../report/reproduction.rst",
            category="1. Reproduction",
        ),
        pdf="results/figures/reproduction.pdf",
    log:
        "results/logs/tables/reproduction.log",
    conda:
        "../envs/analysis.yaml"
    params:
        method=REPRODUCE,
        games=GAMES,
        runs=len(SEEDS),
        steps=run_steps(),
        reps=config["bootstrap"]["reps"],
        seed=config["bootstrap"]["seed"],
    script:
        "../scripts/reproduction.py"


rule per_game_table:
    input:
        scores="results/scores.parquet",
    output:
        md="results/tables/per_game.md",
        csv="results/tables/per_game.csv",
        tex="results/tables/per_game.tex",
        html=report(
            "results/tables/per_game.html",
            caption="../report/per_game.rst",
            category="3. Per game",
        ),
    log:
        "results/logs/tables/per_game.log",
    conda:
        "../envs/analysis.yaml"
    params:
        baselines=config["baselines"],
        variants=VARIANTS,
        games=GAMES,
        runs=len(SEEDS),
        steps=run_steps(),
    script:
        "../scripts/per_game_table.py"


rule aggregates:
    input:
        scores="results/scores.parquet",
    output:
        md="results/tables/aggregates.md",
        json="results/tables/aggregates.json",
        html=report(
            "results/tables/aggregates.html",
            caption="../report/aggregates.rst",
            category="2. Aggregates",
        ),
        png=report(
            "results/figures/aggregates.png",
            caption="../report/aggregates.rst",
            category="2. Aggregates",
        ),
        pdf="results/figures/aggregates.pdf",
    log:
        "results/logs/figures/aggregates.log",
    conda:
        "../envs/analysis.yaml"
    params:
        baselines=config["baselines"],
        variants=VARIANTS,
        games=GAMES,
        runs=len(SEEDS),
        steps=run_steps(),
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
            category="2. Aggregates",
        ),
        pdf="results/figures/performance_profiles.pdf",
    log:
        "results/logs/figures/performance_profiles.log",
    conda:
        "../envs/analysis.yaml"
    params:
        baselines=config["baselines"],
        variants=VARIANTS,
        games=GAMES,
        runs=len(SEEDS),
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
            category="2. Aggregates",
        ),
        pdf="results/figures/probability_of_improvement.pdf",
    log:
        "results/logs/figures/probability_of_improvement.log",
    conda:
        "../envs/analysis.yaml"
    params:
        baselines=config["baselines"],
        variants=VARIANTS,
        games=GAMES,
        runs=len(SEEDS),
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
            category="4. Ablations",
        ),
        pdf="results/figures/{ablation}.pdf",
    log:
        "results/logs/figures/{ablation}.log",
    wildcard_constraints:
        ablation="|".join(a[0] for a in ABLATIONS),
    conda:
        "../envs/analysis.yaml"
    params:
        pair=ablation_variants,
        title=ablation_title,
        runs=len(SEEDS),
        games=len(GAMES),
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
            category="5. Learning curves",
        ),
        pdf="results/figures/sample_efficiency.pdf",
    log:
        "results/logs/figures/sample_efficiency.log",
    conda:
        "../envs/analysis.yaml"
    params:
        variants=VARIANTS,
        runs=len(SEEDS),
        steps=run_steps(),
        eval_every=run_eval_every(),
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
        html=report(
            "results/tables/costs.html",
            caption="../report/costs.rst",
            category="6. Cost",
        ),
    log:
        "results/logs/tables/costs.log",
    conda:
        "../envs/analysis.yaml"
    params:
        runs=len(SEEDS),
        steps=run_steps(),
    script:
        "../scripts/cost_table.py"
