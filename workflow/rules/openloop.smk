# What the world model predicts (config openloop_strips): drama.openloop on the final
# checkpoint of one run per game (the reproduced variant, the first seed), from fresh frames of
# the game played by the run's policy (a finished run's checkpoint holds no replay): real,
# reconstructed and open-loop predicted frames in one strip per game, in the report.


rule openloop:
    input:
        f"{RUNS}/{{game}}/{openloop_variant()}/seed{SEEDS[0]}/eval.parquet",
    output:
        png=report(
            f"{OUT}/openloop/{{game}}.png",
            caption="../report/openloop.rst",
            category="8. Open-loop predictions",
            labels={"game": "{game}"},
        ),
        gif=f"{OUT}/openloop/{{game}}.gif",
    log:
        f"{OUT}/logs/openloop/{{game}}.log",
    conda:
        "../../environment.yml"
    params:
        variant=openloop_variant(),
        seed=SEEDS[0],
        run=subpath(input[0], parent=True),
        prefix=subpath(output.png, strip_suffix=".png"),
    shell:
        "python -m drama.openloop {params.run} --out {params.prefix} > {log} 2>&1"
