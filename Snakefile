# Drama reproducibility workflow: game x seed x variant grid -> per-run parquet -> tables/figures.
#   workstation (GPU): snakemake --cores 8
#   SLURM:             snakemake --profile slurm
#   smoke (CPU):       snakemake --cores 2 --configfile config/smoke.yaml --workflow-profile profiles/cpu
#   learning (CPU):    snakemake --cores 2 --configfile config/cpu_learning.yaml --workflow-profile profiles/cpu
#   one target:        snakemake results/scores.parquet --cores 2 --configfile config/smoke.yaml --workflow-profile profiles/cpu
#   report:            any of these plus --report results/report.html
# `all` is the default target. Put targets BEFORE --configfile, which takes every following word
# as a config file.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/collect.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/sequence_benchmark.smk"
include: "workflow/rules/learning.smk"
include: "workflow/rules/openloop.smk"


rule all:
    default_target: True
    input:
        all_targets(),
        openloop_targets(),
