# The sequence-length scaling figure from the sequence-model benchmark (benchmarks/sequence_speed.py).


# Threads and resources (one GPU on GPU machines) come from the profiles.
rule sequence_benchmark:
    input:
        script="benchmarks/sequence_speed.py",
    output:
        f"{OUT}/benchmarks/sequence_speed.csv",
    log:
        f"{OUT}/logs/benchmarks/sequence_speed.log",
    conda:
        "../../environment.yml"
    params:
        args=sequence_benchmark_args(),
    shell:
        "OMP_NUM_THREADS={threads} python {input.script} {params.args} --csv {output} > {log} 2>&1"


rule sequence_scaling:
    input:
        csv=f"{OUT}/benchmarks/sequence_speed.csv",
    output:
        png=report(
            f"{OUT}/figures/sequence_scaling.png",
            caption="../report/sequence_scaling.rst",
            category="7. Sequence scaling",
        ),
        pdf=f"{OUT}/figures/sequence_scaling.pdf",
        html=report(
            f"{OUT}/tables/sequence_speed.html",
            caption="../report/sequence_scaling.rst",
            category="7. Sequence scaling",
        ),
    log:
        f"{OUT}/logs/figures/sequence_scaling.log",
    conda:
        "../envs/analysis.yaml"
    params:
        lengths=config["sequence_benchmark"]["lengths"],
    script:
        "../scripts/sequence_scaling.py"
