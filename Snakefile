# Drama reproducibility workflow: game x seed x variant grid -> per-run parquet -> tables/figures.
#   workstation: snakemake --cores 8 all
#   SLURM:       snakemake --profile slurm
#   smoke (CPU): snakemake --cores 2 --configfile config/smoke.yaml all
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/collect.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/sequence_benchmark.smk"


rule all:
    default_target: True
    input:
        all_targets(),
