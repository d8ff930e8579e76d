# etcbench: CIFAR-10 -> keys -> encrypted test sets -> JPEG -> training -> evaluation -> report.
# Every rule calls the etcbench CLI; the grid comes from config/config.yaml (validated by the schema).
import os
import shlex
import sys

from snakemake.utils import min_version

min_version("9.0")

# the workflow resolves its config with the etcbench of this checkout (the same code as `etcbench rehearse`)
sys.path.insert(0, workflow.basedir)
import etcbench.config as etcbench_config


# every rule runs `python -m etcbench` of this checkout: also inside the conda environments of envs/ (which install
# its dependencies, not etcbench itself) and on cluster nodes
# (the prefix is formatted like a shell command: literal braces are doubled)
shell.prefix(
    "set -euo pipefail; export PYTHONPATH="
    + shlex.quote(workflow.basedir).replace("{", "{{").replace("}", "}}")
    + "${{PYTHONPATH:+:$PYTHONPATH}}; "
)


# the defaults, found from any --directory; each --configfile, then --config, is merged over them (nested mappings
# key by key, but model_options and train entries replaced whole: etcbench/config.py)
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# Snakemake merged the layers key by key; rebuild the config from the same layers with etcbench's rules, validate
# it against workflow/schemas/config.schema.yaml and fill in the defaults
_resolved = etcbench_config.resolve(
    workflow.config_settings.configfiles,
    dict(workflow.config_settings.config),
    defaults=os.path.join(workflow.basedir, "config", "config.yaml"),
    schema=os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"),
)
config.clear()
config.update(_resolved)


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
