# Grid expansion, paths and parameter helpers shared by all rules (no logic beyond building strings).
import json


wildcard_constraints:
    setting=r"s\d+-m\d+",
    scheme=r"[a-z][a-z0-9_-]*",
    model=r"[a-z][a-z0-9_]*",
    seed=r"\d+",
    quality=r"\d+",
    subsampling=r"444|420",


DATASET = config["dataset"]["name"]
SETTING = f"s{config['dataset']['image_size']}-m{config['block_size']}"
DATA = f"results/data/{DATASET}.npz"


def as_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def image_size(wildcards):
    return int(wildcards.setting.split("-")[0][1:])


def block_size(wildcards):
    return int(wildcards.setting.split("-m")[1])


def scheme_options(wildcards):
    return as_json(config["scheme_options"].get(wildcards.scheme, {}))


def model_options(wildcards):
    return as_json(config["model_options"].get(wildcards.model, {}))


def pretrained(wildcards):
    return str(config["pretrained"].get(wildcards.model, False)).lower()


def train_recipe(wildcards):
    return as_json(config["train"])


def resolved_config(wildcards):
    """The validated configuration with defaults filled in, minus the secret key seed."""
    return as_json({k: v for k, v in config.items() if k != "key_seed"})


def archive_arg(wildcards):
    archive = config["dataset"]["archive"]
    return f"--archive {archive}" if archive else ""


def jpeg_grid():
    return expand(
        "q{quality}-{subsampling}",
        quality=config["jpeg"]["qualities"],
        subsampling=config["jpeg"]["subsampling"],
    )


def jpeg_sets(wildcards):
    return expand(
        "results/jpeg/{setting}/{scheme}/{variant}.npz",
        setting=wildcards.setting,
        scheme=wildcards.scheme,
        variant=jpeg_grid(),
    )


def accuracy_records():
    return expand(
        "results/eval/{setting}/{scheme}/{model}/seed{seed}.json",
        setting=SETTING,
        scheme=config["schemes"],
        model=config["models"],
        seed=config["seeds"],
    )


def compression_records():
    return expand(
        "results/jpeg/{setting}/{scheme}/{variant}.json",
        setting=SETTING,
        scheme=config["schemes"],
        variant=jpeg_grid(),
    )


def example_specs(wildcards, input):
    return " ".join(
        f"{scheme}={enc}={key}"
        for scheme, enc, key in zip(config["schemes"], input.encrypted, input.key_files)
    )


REPORT_TABLES = ["accuracy", "summary", "compression"]
REPORT_FIGURES = [
    "top1_by_model_scheme",
    "top1_vs_jpeg_quality",
    "jpeg_bpp_psnr",
    "examples",
]


def report_outputs():
    return expand(
        "results/report/{table}.{ext}", table=REPORT_TABLES, ext=["csv", "md", "tex"]
    ) + expand(
        "results/report/figures/{figure}.{ext}", figure=REPORT_FIGURES, ext=["png", "pdf"]
    ) + ["results/report/config.yaml"]
