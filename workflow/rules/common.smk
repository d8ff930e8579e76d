# Parameter helpers shared by all rules: strings built from the resolved config; the grid's expansion and checks
# are etcbench.grid's.
import json
import shlex

import etcbench.grid as grid


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
SETTINGS = grid.check_grid(config)
MAIN_SETTING = next(iter(SETTINGS))


def as_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def image_size(wildcards):
    """The setting's image size: given to keygen only (the key carries it to every later stage)."""
    return SETTINGS[wildcards.setting]["image_size"]


def block_size(wildcards):
    return SETTINGS[wildcards.setting]["block_size"]


def scheme_options(wildcards):
    return as_json(config["scheme_options"].get(wildcards.scheme, {}))


def model_options(wildcards):
    return as_json(etcbench_config.model_entry(config, wildcards.model))


def pretrained(wildcards):
    return str(config["pretrained"].get(wildcards.model, False)).lower()


def train_recipe(wildcards):
    """The model's whole recipe on this scheme (every setting spelled out: what runs is what the command shows)."""
    return etcbench_config.recipe_json(config, wildcards.model, wildcards.scheme)


# the master secret every key is derived from: the secret file where the config names one, else key_seed
MASTER_FILE = config["key_master_file"]
MASTER_ARG = f"--master-file {shlex.quote(MASTER_FILE)}" if MASTER_FILE else f"--key-seed {config['key_seed']}"


def master_input(wildcards):
    return [MASTER_FILE] if MASTER_FILE else []


def resolved_config(wildcards):
    """The validated configuration with defaults filled in, minus the secret key seed."""
    return as_json({k: v for k, v in config.items() if k != "key_seed"})


def archive_arg(wildcards):
    archive = config["dataset"]["archive"]
    return f"--archive {archive}" if archive else ""


def other_key(wildcards):
    """The scheme's other key (of this seed with key_per_seed; none for plain, which has no key material): the
    evaluation encrypts the plain test set with it for the key-mismatch test."""
    if wildcards.scheme == "plain":
        return []
    return f"results/keys/{wildcards.setting}/{wildcards.scheme}{_tag(wildcards)}.other.key.npz"


def evaluated_models(wildcards):
    """The model files of every model trained on this setting, scheme and seed, uncompressed and JPEG-trained arms:
    one evaluation job takes them all."""
    entry = SETTINGS[wildcards.setting]
    models = list(entry["schemes"][wildcards.scheme])
    models += [grid.jpeg_model_label(config, wildcards.scheme, m) for m in entry["jpeg_trained"].get(wildcards.scheme, [])]
    return [f"results/models/{wildcards.setting}/{wildcards.scheme}/{model}/seed{wildcards.seed}/model.pt"
            for model in models]


TRANSFORM_ARMS = grid.transform_arms(config)


def transformed_models(wildcards):
    """The plain-trained models of this setting and seed that the evaluation transforms with the scheme's key (the
    model-transformation arm)."""
    return [f"results/models/{wildcards.setting}/plain/{model}/seed{wildcards.seed}/model.pt"
            for setting, scheme, model in TRANSFORM_ARMS
            if (setting, scheme) == (wildcards.setting, wildcards.scheme)]


JPEG_ARM = grid.jpeg_arm(config)


def jpeg_arm_arg(wildcards):
    """The JPEG-trained arm's settings (train.jpeg) as the train command's --train-jpeg, at the quality and
    subsampling its path names."""
    arm = {**JPEG_ARM.to_dict(), "quality": int(wildcards.quality), "subsampling": wildcards.subsampling}
    return f"--train-jpeg {shlex.quote(as_json(arm))}"


ATTACK_RUNS = {(setting, scheme): names for setting, scheme, names in grid.attack_runs(config)}


def attack_runs():
    return list(ATTACK_RUNS)


def attack_names(wildcards):
    """The attacks run against this scheme of this setting."""
    return ATTACK_RUNS[(wildcards.setting, wildcards.scheme)]


def attack_options(wildcards):
    """Options of the attacks this scheme's job runs (as one JSON object)."""
    names = attack_names(wildcards)
    return as_json({k: v for k, v in config["attack"]["options"].items() if k in names})


def attack_classifier(wildcards):
    """The plain-trained model that scores semantic leakage (none when the setting trains no plain model)."""
    path = grid.attack_classifier(config, wildcards.setting)
    return [path] if path else []


def attack_records():
    return [f"results/attacks/{setting}/{scheme}.json" for setting, scheme in attack_runs()]


def attack_examples():
    return [f"results/attacks/{setting}/{scheme}.examples.npz" for setting, scheme in attack_runs()]


def position_init(model):
    """What a model's training started from (its pretrained setting): the position-leak matching subtracts it."""
    value = config["pretrained"].get(model, False)
    return "random" if value is False else "pretrained" if value is True else str(value)


def position_leak_records():
    return [f"results/attacks/{setting}/{scheme}.position-{model}-seed{seed}.json"
            for setting, scheme, model, seed in grid.position_leak_runs(config)]




def _tag(wildcards):
    """".seed<n>" where the model's seed has its own key (key_per_seed), else ""."""
    return grid.seed_key_tag(config, wildcards.scheme, wildcards.seed)


def own_key(wildcards):
    """The key a model of this seed is trained and tested with."""
    return f"results/keys/{wildcards.setting}/{wildcards.scheme}{_tag(wildcards)}.key.npz"


def plain_test(wildcards):
    """The setting's plain test set (the plain scheme's, at its image size): the one test set stored. Each stage
    that tests with a key encrypts it in-process with that key (own_key, other_key)."""
    return f"results/encrypted/{wildcards.setting}/plain/test.npz"


def jpeg_sets(wildcards):
    """The JPEG versions of the test set encrypted with that key (with key_per_seed: under seed<n>/)."""
    tag = _tag(wildcards)
    folder = f"{wildcards.scheme}/seed{wildcards.seed}" if tag else wildcards.scheme
    return [f"results/jpeg/{wildcards.setting}/{folder}/{variant}.npz"
            for variant in grid.jpeg_variants(config, wildcards.scheme)]


def accuracy_records():
    return grid.accuracy_records(config)


def compression_records():
    return grid.compression_records(config)


def key_records():
    """The public record of every key (context, fingerprint, the master's source and fingerprint)."""
    return grid.key_records(config)


def training_metrics():
    """The training record (metrics.json, with the per-epoch history) of every trained model, uncompressed and
    JPEG-trained, seed by seed, for the report's training curves."""
    models = grid.train_cells(config) + [(setting, scheme, grid.jpeg_model_label(config, scheme, model))
                                         for setting, scheme, model in grid.jpeg_trained_cells(config)]
    return [f"results/models/{setting}/{scheme}/{model}/seed{seed}/metrics.json"
            for setting, scheme, model in models for seed in config["seeds"]]


def example_files():
    """The example images of each scheme of the main setting (written by its plain_test or encrypt_examples job) for
    the report."""
    return [f"results/encrypted/{MAIN_SETTING}/{scheme}/examples.npz" for scheme in SETTINGS[MAIN_SETTING]["schemes"]]


SEMANTIC_LEAKAGE = any(grid.attack_classifier(config, setting) for setting, _ in attack_runs())
REPORT_TABLES = (
    ["accuracy", "summary", "comparison", "schemes", "compression", "bd_rate", "key_mismatch", "keys"]
    + (["attacks"] if attack_runs() else [])
    + (["position_leak"] if position_leak_records() else [])
    + (["model_transformation"] if TRANSFORM_ARMS else [])
    + (["jpeg_training"] if grid.jpeg_trained_cells(config) else [])
)
REPORT_FIGURES = (
    ["top1_by_model_scheme", "top1_vs_jpeg_quality", "jpeg_bpp_psnr", "examples", "training_curves",
     "confusion_matrices"]
    + (["attack_examples", "attack_ssim"] if attack_runs() else [])
    + (["attack_semantic"] if SEMANTIC_LEAKAGE else [])
)


def report_outputs():
    return expand(
        "results/report/{table}.{ext}", table=REPORT_TABLES, ext=["csv", "md", "tex"]
    ) + expand(
        "results/report/figures/{figure}.{ext}", figure=REPORT_FIGURES, ext=["png", "pdf"]
    ) + ["results/report/config.yaml"]
