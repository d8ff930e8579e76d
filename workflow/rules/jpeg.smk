rule compress_jpeg:
    input:
        plain=plain_test,
        key="results/keys/{setting}/{scheme}.key.npz",
    output:
        # every configured quality at one chroma subsampling in one job (one start-up, one load of the images)
        images=expand("results/jpeg/{{setting}}/{{scheme}}/q{quality}-{{subsampling}}.npz", quality=QUALITIES),
        metrics=expand("results/jpeg/{{setting}}/{{scheme}}/q{quality}-{{subsampling}}.json", quality=QUALITIES),
    params:
        dataset=DATASET,
        qualities=" ".join(map(str, QUALITIES)),
        out_dir=lambda wildcards: f"results/jpeg/{wildcards.setting}/{wildcards.scheme}",
    threads: 2
    log:
        "results/logs/compress_jpeg/{setting}-{scheme}-{subsampling}.log",
    benchmark:
        "results/benchmarks/compress_jpeg/{setting}-{scheme}-{subsampling}.tsv"
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m etcbench compress --plain-test {input.plain} --key {input.key} "
        "--quality {params.qualities} --subsampling {wildcards.subsampling} --workers {threads} "
        "--dataset {params.dataset} --out-dir {params.out_dir} 2> {log}"


# key_per_seed: the JPEG versions of a training seed's own test set, for its evaluation (the compression study
# reads the sets above)
use rule compress_jpeg as compress_seed_jpeg with:
    input:
        plain=plain_test,
        key="results/keys/{setting}/{scheme}.seed{seed}.key.npz",
    output:
        images=expand("results/jpeg/{{setting}}/{{scheme}}/seed{{seed}}/q{quality}-{{subsampling}}.npz",
                      quality=QUALITIES),
        metrics=expand("results/jpeg/{{setting}}/{{scheme}}/seed{{seed}}/q{quality}-{{subsampling}}.json",
                       quality=QUALITIES),
    params:
        dataset=DATASET,
        qualities=" ".join(map(str, QUALITIES)),
        out_dir=lambda wildcards: f"results/jpeg/{wildcards.setting}/{wildcards.scheme}/seed{wildcards.seed}",
    log:
        "results/logs/compress_jpeg/{setting}-{scheme}-seed{seed}-{subsampling}.log",
    benchmark:
        "results/benchmarks/compress_jpeg/{setting}-{scheme}-seed{seed}-{subsampling}.tsv"
