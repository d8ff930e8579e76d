rule evaluate_model:
    input:
        model="results/models/{setting}/{scheme}/{model}/seed{seed}/model.pt",
        test=own_test,
        jpeg=jpeg_sets,
        other=other_key_test,
        plain="results/encrypted/{setting}/plain/test.npz",
    output:
        "results/eval/{setting}/{scheme}/{model}/seed{seed}.json",
    params:
        device=config["device"],
        other=lambda wildcards, input: f"--other-test {input.other}" if input.other else "",
    threads: 8
    log:
        "results/logs/evaluate_model/{setting}-{scheme}-{model}-seed{seed}.log",
    benchmark:
        "results/benchmarks/evaluate_model/{setting}-{scheme}-{model}-seed{seed}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m etcbench evaluate --model-file {input.model} --test {input.test} --jpeg {input.jpeg} "
        "{params.other} --plain-test {input.plain} "
        "--device {params.device} --threads {threads} --out {output} 2> {log}"
