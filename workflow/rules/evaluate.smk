rule evaluate_model:
    input:
        model="results/models/{setting}/{scheme}/{model}/seed{seed}/model.pt",
        test="results/encrypted/{setting}/{scheme}/test.npz",
        jpeg=jpeg_sets,
    output:
        "results/eval/{setting}/{scheme}/{model}/seed{seed}.json",
    params:
        device=config["device"],
    threads: 8
    log:
        "results/logs/evaluate_model/{setting}-{scheme}-{model}-seed{seed}.log",
    benchmark:
        "results/benchmarks/evaluate_model/{setting}-{scheme}-{model}-seed{seed}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m etcbench evaluate --model-file {input.model} --test {input.test} --jpeg {input.jpeg} "
        "--device {params.device} --threads {threads} --out {output} 2> {log}"
