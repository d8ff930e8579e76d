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
DATA = f"results/data/{DATASET}.npz"
QUALITIES = config["jpeg"]["qualities"]
# schemes that encrypt into one grayscale plane with the chroma subsampling built in (their JPEG is grayscale):
# each is compressed at its own subsampling only (etcbench.ciphers: Scheme.plane_subsampling)
PLANE_SUBSAMPLING = {"etc-gray": "420", "etc-gray-444": "444"}
SETTINGS = etcbench_config.check_grid(config)
MAIN_SETTING = next(iter(SETTINGS))


def as_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def image_size(wildcards):
    return int(wildcards.setting.split("-")[0][1:])


def block_size(wildcards):
    return int(wildcards.setting.split("-m")[1])


def scheme_options(wildcards):
    return as_json(config["scheme_options"].get(wildcards.scheme, {}))


def model_options(wildcards):
    return as_json(etcbench_config.model_entry(config, wildcards.model))


def pretrained(wildcards):
    return str(config["pretrained"].get(wildcards.model, False)).lower()


def train_recipe(wildcards):
    """The model's whole recipe on this scheme (every setting spelled out: what runs is what the command shows)."""
    return etcbench_config.recipe_json(config, wildcards.model, wildcards.scheme)


def resolved_config(wildcards):
    """The validated configuration with defaults filled in, minus the secret key seed."""
    return as_json({k: v for k, v in config.items() if k != "key_seed"})


def archive_arg(wildcards):
    archive = config["dataset"]["archive"]
    return f"--archive {archive}" if archive else ""


def other_key_test(wildcards):
    """The test set encrypted with the scheme's other key (none for plain, which has no key material)."""
    if wildcards.scheme == "plain":
        return []
    return f"results/encrypted/{wildcards.setting}/{wildcards.scheme}/test-other.npz"


def attack_runs():
    """(setting, scheme) of every attack job: each runs its setting's attacks, plus the "none" floor."""
    return [(setting, scheme) for setting, entry in SETTINGS.items() if entry["attacks"] for scheme in entry["schemes"]]


def attack_options(wildcards):
    """Options of the attacks this setting runs (as one JSON object)."""
    names = SETTINGS[wildcards.setting]["attacks"]
    return as_json({k: v for k, v in config["attack"]["options"].items() if k in names})


def attack_records():
    return [f"results/attacks/{setting}/{scheme}.json" for setting, scheme in attack_runs()]


def attack_examples():
    return [f"results/attacks/{setting}/{scheme}.examples.npz" for setting, scheme in attack_runs()]


def jpeg_variants(scheme):
    subsampling = [PLANE_SUBSAMPLING[scheme]] if scheme in PLANE_SUBSAMPLING else config["jpeg"]["subsampling"]
    return expand("q{quality}-{subsampling}", quality=config["jpeg"]["qualities"], subsampling=subsampling)


def jpeg_sets(wildcards):
    return expand(
        "results/jpeg/{setting}/{scheme}/{variant}.npz",
        setting=wildcards.setting,
        scheme=wildcards.scheme,
        variant=jpeg_variants(wildcards.scheme),
    )


def accuracy_records():
    return [
        f"results/eval/{setting}/{scheme}/{model}/seed{seed}.json"
        for setting, entry in SETTINGS.items()
        for scheme, models in entry["schemes"].items()
        for model in models
        for seed in config["seeds"]
    ]


def compression_records():
    return [
        f"results/jpeg/{setting}/{scheme}/{variant}.json"
        for setting, entry in SETTINGS.items()
        for scheme in entry["schemes"]
        for variant in jpeg_variants(scheme)
    ]


def example_schemes():
    return list(SETTINGS[MAIN_SETTING]["schemes"])


def example_specs(wildcards, input):
    return " ".join(
        f"{scheme}={enc}={key}"
        for scheme, enc, key in zip(example_schemes(), input.encrypted, input.key_files)
    )


REPORT_TABLES = ["accuracy", "summary", "compression", "key_mismatch"] + (["attacks"] if attack_runs() else [])
REPORT_FIGURES = [
    "top1_by_model_scheme",
    "top1_vs_jpeg_quality",
    "jpeg_bpp_psnr",
    "examples",
] + (["attack_examples", "attack_ssim"] if attack_runs() else [])


def report_outputs():
    return expand(
        "results/report/{table}.{ext}", table=REPORT_TABLES, ext=["csv", "md", "tex"]
    ) + expand(
        "results/report/figures/{figure}.{ext}", figure=REPORT_FIGURES, ext=["png", "pdf"]
    ) + ["results/report/config.yaml"]
