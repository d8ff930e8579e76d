if MASTER_FILE:

    # the master secret file, made once (32 random bytes, mode 0600) unless it exists; protected: Snakemake makes it
    # read-only and never deletes it
    rule master_secret:
        output:
            protected(MASTER_FILE),
        log:
            "results/logs/master_secret.log",
        conda:
            "../../envs/core.yaml"
        shell:
            "python -m etcbench master --out {output:q} 2> {log}"


# a scheme's key, derived from the master secret for its setting, scheme and role (HKDF-SHA256)
rule make_key:
    input:
        master_input,
    output:
        key="results/keys/{setting}/{scheme}.key.npz",
        info="results/keys/{setting}/{scheme}.json",
    params:
        size=image_size,
        block=block_size,
        master=MASTER_ARG,
        role="defender",
        seed_arg="",
        options=scheme_options,
    log:
        "results/logs/make_key/{setting}-{scheme}.log",
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m etcbench keygen --scheme {wildcards.scheme} --block-size {params.block} "
        "--image-size {params.size} {params.master} --role {params.role} {params.seed_arg} --options {params.options:q} "
        "--out {output.key} --info {output.info} 2> {log}"


# the plain scheme's test set: the test split resized to the setting's image size, the one test set stored; every
# other scheme's is encrypted from it with the key, in-process, by each stage that reads it
rule plain_test:
    input:
        data=DATA,
        key="results/keys/{setting}/plain.key.npz",
    output:
        test="results/encrypted/{setting}/plain/test.npz",
        examples="results/encrypted/{setting}/plain/examples.npz",
    params:
        interpolation=config["dataset"]["interpolation"],
        num_examples=config["report"]["num_examples"],
    log:
        "results/logs/plain_test/{setting}.log",
    benchmark:
        "results/benchmarks/plain_test/{setting}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m etcbench encrypt --data {input.data} --key {input.key} --split test "
        "--interpolation {params.interpolation} --out {output.test} "
        "--out-examples {output.examples} --num-examples {params.num_examples} 2> {log}"


# the first test images of an encrypted scheme plain, encrypted and decrypted, for the report (which opens no key);
# no encrypted test set is written
rule encrypt_examples:
    input:
        data=DATA,
        key="results/keys/{setting}/{scheme}.key.npz",
    output:
        examples="results/encrypted/{setting}/{scheme}/examples.npz",
    params:
        interpolation=config["dataset"]["interpolation"],
        num_examples=config["report"]["num_examples"],
    log:
        "results/logs/encrypt_examples/{setting}-{scheme}.log",
    benchmark:
        "results/benchmarks/encrypt_examples/{setting}-{scheme}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m etcbench encrypt --data {input.data} --key {input.key} --split test "
        "--interpolation {params.interpolation} "
        "--out-examples {output.examples} --num-examples {params.num_examples} 2> {log}"


# the plain scheme's examples come with its test set
ruleorder: plain_test > encrypt_examples


# the "other" key of each scheme (role "other"): every model is also tested with a key that is not its own (key
# mismatch; the evaluation encrypts the plain test set with it)
use rule make_key as make_other_key with:
    output:
        key="results/keys/{setting}/{scheme}.other.key.npz",
        info="results/keys/{setting}/{scheme}.other.json",
    params:
        size=image_size,
        block=block_size,
        master=MASTER_ARG,
        role="other",
        seed_arg="",
        options=scheme_options,
    log:
        "results/logs/make_key/{setting}-{scheme}-other.log",


# key_per_seed: a key and an "other" key for every training seed of a trained scheme (the own one's JPEG test sets:
# jpeg.smk); the compression study and the attacks keep the one key above
use rule make_key as make_seed_key with:
    output:
        key="results/keys/{setting}/{scheme}.seed{seed}.key.npz",
        info="results/keys/{setting}/{scheme}.seed{seed}.json",
    params:
        size=image_size,
        block=block_size,
        master=MASTER_ARG,
        role="defender",
        seed_arg=lambda wildcards: f"--training-seed {wildcards.seed}",
        options=scheme_options,
    log:
        "results/logs/make_key/{setting}-{scheme}-seed{seed}.log",


use rule make_key as make_seed_other_key with:
    output:
        key="results/keys/{setting}/{scheme}.seed{seed}.other.key.npz",
        info="results/keys/{setting}/{scheme}.seed{seed}.other.json",
    params:
        size=image_size,
        block=block_size,
        master=MASTER_ARG,
        role="other",
        seed_arg=lambda wildcards: f"--training-seed {wildcards.seed}",
        options=scheme_options,
    log:
        "results/logs/make_key/{setting}-{scheme}-seed{seed}-other.log",
