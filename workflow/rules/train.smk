rule train_model:
    input:
        data=DATA,
        key=own_key,
        plain=plain_test,
    output:
        model="results/models/{setting}/{scheme}/{model}/seed{seed}/model.pt",
        metrics="results/models/{setting}/{scheme}/{model}/seed{seed}/metrics.json",
    params:
        interpolation=config["dataset"]["interpolation"],
        options=model_options,
        recipe=train_recipe,
        pretrained=pretrained,
        device=config["device"],
        runtime=f"--channels-last {config['channels_last']}" + (" --compile" if config["compile"] else ""),
        dataset=DATASET,
        state="results/state/{setting}/{scheme}/{model}/seed{seed}",
        arm="",
    threads: 8
    # the trainings and their evaluations are the run's critical path (train -> evaluate -> report): when cores are
    # scarce they start before the attacks and JPEG jobs, which nothing waits on but the report
    priority: 2
    log:
        "results/logs/train_model/{setting}-{scheme}-{model}-seed{seed}.log",
    benchmark:
        "results/benchmarks/train_model/{setting}-{scheme}-{model}-seed{seed}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m etcbench train --data {input.data} --key {input.key} --plain-test {input.plain} "
        "--model {wildcards.model} --model-options {params.options:q} --recipe {params.recipe:q} {params.arm} "
        "--pretrained {params.pretrained:q} --seed {wildcards.seed} "
        "--interpolation {params.interpolation} --dataset {params.dataset} --device {params.device} {params.runtime} "
        "--threads {threads} --state-dir {params.state} "
        "--out-model {output.model} --out-metrics {output.metrics} 2> {log}"


# the JPEG-trained arms (a setting's jpeg_trained, train.jpeg): the training, validation and test images are
# encrypted once with the key, JPEG-coded and decoded in the job (what the cloud receives), and the model trains on
# them with ciphertext-domain augmentation; its folder is the model's label, <model>@q<quality>-<subsampling>
use rule train_model as train_model_jpeg with:
    output:
        model="results/models/{setting}/{scheme}/{model}@q{quality}-{subsampling}/seed{seed}/model.pt",
        metrics="results/models/{setting}/{scheme}/{model}@q{quality}-{subsampling}/seed{seed}/metrics.json",
    params:
        # the other params are train_model's (a use-rule's params replace those it names)
        state="results/state/{setting}/{scheme}/{model}@q{quality}-{subsampling}/seed{seed}",
        arm=jpeg_arm_arg,
    log:
        "results/logs/train_model_jpeg/{setting}-{scheme}-{model}@q{quality}-{subsampling}-seed{seed}.log",
    benchmark:
        "results/benchmarks/train_model_jpeg/{setting}-{scheme}-{model}@q{quality}-{subsampling}-seed{seed}.tsv"
