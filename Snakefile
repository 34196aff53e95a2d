# floodx: Flooding-X (Liu et al., ACL 2022) end to end.
#   snakemake --cores all                                   embedded default, offline, CPU
#   snakemake --cores 8 --resources gpu=2                   two local GPUs
#   snakemake --configfile config/paper.yaml --profile profiles/slurm   the paper on a cluster
# Each rule calls one module: `python -m floodx.<module>` (see docs/design.md).

# (found beside this Snakefile, so that `snakemake -s .../Snakefile -d <folder>` works from anywhere)
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/flooding_x.smk"
include: "workflow/rules/attacks.smk"
include: "workflow/rules/outputs.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
