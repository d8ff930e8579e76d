# one job per setting, scheme and seed evaluates every model trained on them (uncompressed and JPEG-trained arms),
# and the plain-trained models the setting transforms with the scheme's key: each test set is made (and each JPEG
# set decoded) once for all the models; the own-key and other-key test sets are encrypted in the job from the plain
# one, not stored
rule evaluate_scheme:
    input:
        models=evaluated_models,
        transform=transformed_models,
        key=own_key,
        plain=plain_test,
        jpeg=jpeg_sets,
        other_key=other_key,
    output:
        "results/eval/{setting}/{scheme}/seed{seed}.json",
    params:
        device=config["device"],
        other=lambda wildcards, input: f"--other-key {input.other_key}" if input.other_key else "",
        transform=lambda wildcards, input: f"--transform-model-file {input.transform}" if input.transform else "",
    threads: 8
    priority: 1
    log:
        "results/logs/evaluate_scheme/{setting}-{scheme}-seed{seed}.log",
    benchmark:
        "results/benchmarks/evaluate_scheme/{setting}-{scheme}-seed{seed}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m etcbench evaluate --model-file {input.models} {params.transform} --key {input.key} "
        "--plain-test {input.plain} --jpeg {input.jpeg} {params.other} "
        "--device {params.device} --threads {threads} --out {output} 2> {log}"
