rule compress_jpeg:
    input:
        images="results/encrypted/{setting}/{scheme}/test.npz",
        plain="results/encrypted/{setting}/plain/test.npz",
        key="results/keys/{setting}/{scheme}.key.npz",
    output:
        images="results/jpeg/{setting}/{scheme}/q{quality}-{subsampling}.npz",
        metrics="results/jpeg/{setting}/{scheme}/q{quality}-{subsampling}.json",
    params:
        dataset=DATASET,
    threads: 2
    log:
        "results/logs/compress_jpeg/{setting}-{scheme}-q{quality}-{subsampling}.log",
    benchmark:
        "results/benchmarks/compress_jpeg/{setting}-{scheme}-q{quality}-{subsampling}.tsv"
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m etcbench compress --images {input.images} --plain {input.plain} --key {input.key} "
        "--quality {wildcards.quality} --subsampling {wildcards.subsampling} --workers {threads} "
        "--dataset {params.dataset} --out-images {output.images} --out-metrics {output.metrics} 2> {log}"
