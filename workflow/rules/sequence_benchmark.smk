# The sequence-length scaling figure from the sequence-model benchmark (benchmarks/sequence_speed.py).


rule sequence_benchmark:
    input:
        script="benchmarks/sequence_speed.py",
    output:
        "results/benchmarks/sequence_speed.csv",
    log:
        "results/logs/benchmarks/sequence_speed.log",
    conda:
        "../../environment.yml"
    threads: TRAIN_RESOURCES["threads"]
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=60,
    params:
        args=sequence_benchmark_args(),
        python=PYTHON,
    shell:
        "OMP_NUM_THREADS={threads} {params.python} {input.script} {params.args} --csv {output} > {log} 2>&1"


rule sequence_scaling:
    input:
        csv="results/benchmarks/sequence_speed.csv",
    output:
        png=report(
            "results/figures/sequence_scaling.png",
            caption="../report/sequence_scaling.rst",
            category="Sequence models",
        ),
        pdf="results/figures/sequence_scaling.pdf",
    log:
        "results/logs/figures/sequence_scaling.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/sequence_scaling.py"
