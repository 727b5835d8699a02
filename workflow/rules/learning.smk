# Does the agent learn? (config random_episodes > 0, e.g. config/cpu_learning.yaml): a random
# policy measured under the agent's protocol and evaluation (drama.random_policy), then the
# agent-vs-random table and the learning curves (analysis.learning).


localrules:
    learning,


rule random_policy:
    output:
        f"{OUT}/random/{{game}}.parquet",
    log:
        f"{OUT}/logs/random/{{game}}.log",
    conda:
        "../../environment.yml"
    params:
        args=random_policy_args(),
    shell:
        "python -m drama.random_policy --game {wildcards.game} --out {output}"
        " {params.args} > {log} 2>&1"


rule sampled_eval:
    input:
        f"{RUNS}/{{game}}/{{variant}}/seed{{seed}}/eval.parquet",
    output:
        f"{OUT}/sampled/{{game}}/{{variant}}/seed{{seed}}.parquet",
    log:
        f"{OUT}/logs/sampled/{{game}}/{{variant}}/seed{{seed}}.log",
    conda:
        "../../environment.yml"
    params:
        run=subpath(input[0], parent=True),
        episodes=config["sampled_episodes"],
    shell:
        "python -m drama.evaluate_run {params.run} --policy sampled"
        " --episodes {params.episodes} --out {output} > {log} 2>&1"


rule learning:
    input:
        evals=checked_run_eval_files,
        random=expand(f"{OUT}/random/{{game}}.parquet", game=GAMES),
        sampled=sampled_eval_files(),
    output:
        md=f"{OUT}/tables/learning.md",
        csv=f"{OUT}/tables/learning.csv",
        html=report(
            f"{OUT}/tables/learning.html",
            caption="../report/learning.rst",
            category="0. Does it learn?",
        ),
        png=report(
            f"{OUT}/figures/learning_curves.png",
            caption="../report/learning.rst",
            category="0. Does it learn?",
        ),
        pdf=f"{OUT}/figures/learning_curves.pdf",
    log:
        f"{OUT}/logs/tables/learning.log",
    conda:
        "../envs/analysis.yaml"
    params:
        variant=REPRODUCE,
        games=GAMES,
        steps=run_steps(),
        episodes=config["random_episodes"],
        runs=len(SEEDS),
    script:
        "../scripts/learning.py"
