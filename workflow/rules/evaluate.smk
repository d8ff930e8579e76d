# one job per setting, scheme and seed evaluates every model trained on them: each test set is loaded (and each JPEG
# set decoded) once for all the models; the other-key test set is encrypted in the job, not stored
rule evaluate_scheme:
    input:
        models=evaluated_models,
        test=own_test,
        jpeg=jpeg_sets,
        other_key=other_key,
        plain="results/encrypted/{setting}/plain/test.npz",
    output:
        "results/eval/{setting}/{scheme}/seed{seed}.json",
    params:
        device=config["device"],
        other=lambda wildcards, input: f"--other-key {input.other_key}" if input.other_key else "",
    threads: 8
    priority: 1
    log:
        "results/logs/evaluate_scheme/{setting}-{scheme}-seed{seed}.log",
    benchmark:
        "results/benchmarks/evaluate_scheme/{setting}-{scheme}-seed{seed}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m etcbench evaluate --model-file {input.models} --test {input.test} --jpeg {input.jpeg} "
        "{params.other} --plain-test {input.plain} "
        "--device {params.device} --threads {threads} --out {output} 2> {log}"
