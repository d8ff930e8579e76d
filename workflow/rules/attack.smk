rule attack_scheme:
    input:
        master_input,
        data=DATA,
        key="results/keys/{setting}/{scheme}.key.npz",
        plain=plain_test,
        classifier=attack_classifier,
    output:
        records="results/attacks/{setting}/{scheme}.json",
        examples="results/attacks/{setting}/{scheme}.examples.npz",
    params:
        attacks=lambda wildcards: " ".join(attack_names(wildcards)),
        classifier=lambda wildcards, input: f"--classifier {input.classifier}" if input.classifier else "",
        options=attack_options,
        num_images=config["attack"]["num_images"],
        train_images=config["attack"]["train_images"],
        attacker_keys=config["attack"]["attacker_keys"],
        master=MASTER_ARG,
        seed=config["attack"]["seed"],
        num_examples=config["attack"]["num_examples"],
        interpolation=config["dataset"]["interpolation"],
        device=config["device"],
        dataset=DATASET,
    threads: 8
    log:
        "results/logs/attack_scheme/{setting}-{scheme}.log",
    benchmark:
        "results/benchmarks/attack_scheme/{setting}-{scheme}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m etcbench attack --attacks {params.attacks} --options {params.options:q} --data {input.data} "
        "--key {input.key} --plain-test {input.plain} --num-images {params.num_images} "
        "--train-images {params.train_images} --attacker-keys {params.attacker_keys} "
        "{params.master} --seed {params.seed} "
        "--interpolation {params.interpolation} --num-examples {params.num_examples} --dataset {params.dataset} "
        "{params.classifier} --device {params.device} --threads {threads} --no-progress "
        "--out {output.records} --out-examples {output.examples} 2> {log}"


rule position_leak:
    input:
        model="results/models/{setting}/{scheme}/{model}/seed{seed}/model.pt",
        reference="results/models/{setting}/plain/{model}/seed{seed}/model.pt",
        key=own_key,
    output:
        "results/attacks/{setting}/{scheme}.position-{model}-seed{seed}.json",
    params:
        init=lambda wildcards: position_init(wildcards.model),
    log:
        "results/logs/position_leak/{setting}-{scheme}-{model}-seed{seed}.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m etcbench position-leak --model {input.model} --reference {input.reference} --key {input.key} "
        "--init {params.init:q} --out {output} 2> {log}"
