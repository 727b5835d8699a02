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
        scores=f"{OUT}/scores.parquet",
    output:
        md=f"{OUT}/tables/reproduction.md",
        csv=f"{OUT}/tables/reproduction.csv",
        aggregates_csv=f"{OUT}/tables/reproduction_aggregates.csv",
        tex=f"{OUT}/tables/reproduction.tex",
        rst=f"{OUT}/tables/reproduction.rst",
        html=report(
            f"{OUT}/tables/reproduction.html",
            caption="../report/reproduction_table.rst",
            category="1. Reproduction",
        ),
        rates_csv=f"{OUT}/tables/reproduction_rates.csv",
        rates_html=report(
            f"{OUT}/tables/reproduction_rates.html",
            caption="../report/reproduction_rates.rst",
            category="1. Reproduction",
        ),
        png=report(
            f"{OUT}/figures/reproduction.png",
            caption="../report/reproduction.rst",
            category="1. Reproduction",
        ),
        pdf=f"{OUT}/figures/reproduction.pdf",
    log:
        f"{OUT}/logs/tables/reproduction.log",
    conda:
        "../envs/analysis.yaml"
    params:
        method=REPRODUCE,
        games=GAMES,
        runs=len(SEEDS),
        steps=run_steps(),
        reps=config["bootstrap"]["reps"],
        seed=config["bootstrap"]["seed"],
        verdict=config["reproduction"],
    script:
        "../scripts/reproduction.py"


rule per_game_table:
    input:
        scores=f"{OUT}/scores.parquet",
    output:
        md=f"{OUT}/tables/per_game.md",
        csv=f"{OUT}/tables/per_game.csv",
        tex=f"{OUT}/tables/per_game.tex",
        html=report(
            f"{OUT}/tables/per_game.html",
            caption="../report/per_game.rst",
            category="3. Per game",
        ),
    log:
        f"{OUT}/logs/tables/per_game.log",
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
        scores=f"{OUT}/scores.parquet",
    output:
        md=f"{OUT}/tables/aggregates.md",
        json=f"{OUT}/tables/aggregates.json",
        html=report(
            f"{OUT}/tables/aggregates.html",
            caption="../report/aggregates.rst",
            category="2. Aggregates",
        ),
        png=report(
            f"{OUT}/figures/aggregates.png",
            caption="../report/aggregates.rst",
            category="2. Aggregates",
        ),
        pdf=f"{OUT}/figures/aggregates.pdf",
    log:
        f"{OUT}/logs/figures/aggregates.log",
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
        scores=f"{OUT}/scores.parquet",
    output:
        png=report(
            f"{OUT}/figures/performance_profiles.png",
            caption="../report/performance_profiles.rst",
            category="2. Aggregates",
        ),
        pdf=f"{OUT}/figures/performance_profiles.pdf",
    log:
        f"{OUT}/logs/figures/performance_profiles.log",
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
        scores=f"{OUT}/scores.parquet",
    output:
        png=report(
            f"{OUT}/figures/probability_of_improvement.png",
            caption="../report/probability_of_improvement.rst",
            category="2. Aggregates",
        ),
        pdf=f"{OUT}/figures/probability_of_improvement.pdf",
    log:
        f"{OUT}/logs/figures/probability_of_improvement.log",
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
        scores=f"{OUT}/scores.parquet",
    output:
        png=report(
            f"{OUT}/figures/{{ablation}}.png",
            caption="../report/ablation.rst",
            category="4. Ablations",
        ),
        pdf=f"{OUT}/figures/{{ablation}}.pdf",
    log:
        f"{OUT}/logs/figures/{{ablation}}.log",
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
        curves=f"{OUT}/curves.parquet",
    output:
        png=report(
            f"{OUT}/figures/sample_efficiency.png",
            caption="../report/sample_efficiency.rst",
            category="5. Learning curves",
        ),
        pdf=f"{OUT}/figures/sample_efficiency.pdf",
    log:
        f"{OUT}/logs/figures/sample_efficiency.log",
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
        scores=f"{OUT}/scores.parquet",
    output:
        md=f"{OUT}/tables/costs.md",
        csv=f"{OUT}/tables/costs.csv",
        html=report(
            f"{OUT}/tables/costs.html",
            caption="../report/costs.rst",
            category="6. Cost",
        ),
    log:
        f"{OUT}/logs/tables/costs.log",
    conda:
        "../envs/analysis.yaml"
    params:
        runs=len(SEEDS),
        steps=run_steps(),
    script:
        "../scripts/cost_table.py"
