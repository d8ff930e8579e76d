rule prepare_data:
    output:
        data=DATA,
        info=f"results/data/{DATASET}.json",
    params:
        archive=archive_arg,
        train=config["dataset"]["train_size"],
        val=config["dataset"]["val_size"],
        test=config["dataset"]["test_size"],
        seed=config["dataset"]["split_seed"],
    log:
        "results/logs/prepare_data.log",
    benchmark:
        "results/benchmarks/prepare_data.tsv"
    conda:
        "../../envs/core.yaml"
    shell:
        "python -m etcbench prepare {params.archive} --cache-dir results/data/download "
        "--train-size {params.train} --val-size {params.val} --test-size {params.test} --seed {params.seed} "
        "--out {output.data} --info {output.info} 2> {log}"
