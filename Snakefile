# etcbench: CIFAR-10 -> keys -> encrypted test sets -> JPEG -> training -> evaluation -> report.
# Every rule calls the etcbench CLI; the grid comes from config/config.yaml (validated by the schema).
import os
import shlex

from snakemake.utils import min_version, validate

min_version("9.0")


# every rule runs `python -m etcbench` of this checkout: also inside the conda environments of envs/ (which install
# its dependencies, not etcbench itself) and on cluster nodes
# (the prefix is formatted like a shell command: literal braces are doubled)
shell.prefix(
    "set -euo pipefail; export PYTHONPATH="
    + shlex.quote(workflow.basedir).replace("{", "{{").replace("}", "}}")
    + "${{PYTHONPATH:+:$PYTHONPATH}}; "
)


# the defaults, found from any --directory; a --configfile is merged over them (nested mappings key by key)
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


validate(config, schema="workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/encrypt.smk"
include: "workflow/rules/jpeg.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/attack.smk"
include: "workflow/rules/report.smk"


localrules:
    all,


rule all:
    input:
        report_outputs(),
    default_target: True
