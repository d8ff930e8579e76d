rule make_report:
    input:
        accuracy=accuracy_records(),
        compression=compression_records(),
        examples=example_files(),
        attacks=attack_records(),
        attack_examples=attack_examples(),
        position_leaks=position_leak_records(),
        metrics=training_metrics(),
        key_records=key_records(),
    output:
        tables=expand(
            "results/report/{table}.{ext}",
            table=REPORT_TABLES,
            ext=["md", "tex"],
        ),
        accuracy=report(
            "results/report/accuracy.csv",
            caption="../report/accuracy.rst",
            category="Accuracy",
        ),
        summary=report(
            "results/report/summary.csv",
            caption="../report/summary.rst",
            category="Accuracy",
        ),
        comparison=report(
            "results/report/comparison.csv",
            caption="../report/comparison.rst",
            category="Accuracy",
        ),
        schemes=report(
            "results/report/schemes.csv",
            caption="../report/schemes.rst",
            category="Accuracy",
        ),
        training_curves=report(
            "results/report/figures/training_curves.png",
            caption="../report/training_curves.rst",
            category="Accuracy",
        ),
        confusion=report(
            "results/report/figures/confusion_matrices.png",
            caption="../report/confusion_matrices.rst",
            category="Accuracy",
        ),
        compression=report(
            "results/report/compression.csv",
            caption="../report/compression.rst",
            category="JPEG",
        ),
        bd_rate=report(
            "results/report/bd_rate.csv",
            caption="../report/bd_rate.rst",
            category="JPEG",
        ),
        top1=report(
            "results/report/figures/top1_by_model_scheme.png",
            caption="../report/top1_by_model_scheme.rst",
            category="Accuracy",
        ),
        top1_jpeg=report(
            "results/report/figures/top1_vs_jpeg_quality.png",
            caption="../report/top1_vs_jpeg_quality.rst",
            category="JPEG",
        ),
        rate=report(
            "results/report/figures/jpeg_bpp_psnr.png",
            caption="../report/jpeg_bpp_psnr.rst",
            category="JPEG",
        ),
        examples=report(
            "results/report/figures/examples.png",
            caption="../report/examples.rst",
            category="Examples",
        ),
        key_mismatch=report(
            "results/report/key_mismatch.csv",
            caption="../report/key_mismatch.rst",
            category="Accuracy",
        ),
        key_table=report(
            "results/report/keys.csv",
            caption="../report/keys.rst",
            category="Keys",
        ),
        attack_files=[
            report(f"results/report/{name}", caption=f"../report/{caption}", category="Attacks")
            for name, caption in (
                ("attacks.csv", "attacks.rst"),
                ("figures/attack_examples.png", "attack_examples.rst"),
                ("figures/attack_ssim.png", "attack_ssim.rst"),
            )
        ]
        if attack_runs()
        else [],
        semantic_files=[
            report(
                "results/report/figures/attack_semantic.png",
                caption="../report/attack_semantic.rst",
                category="Attacks",
            )
        ]
        if SEMANTIC_LEAKAGE
        else [],
        leak_files=[
            report(
                "results/report/position_leak.csv",
                caption="../report/position_leak.rst",
                category="Attacks",
            )
        ]
        if position_leak_records()
        else [],
        arm_files=[
            report(f"results/report/{name}.csv", caption=f"../report/{name}.rst", category="Accuracy")
            for name in ("model_transformation", "jpeg_training")
            if name in REPORT_TABLES
        ],
        pdfs=expand("results/report/figures/{figure}.pdf", figure=REPORT_FIGURES),
        config="results/report/config.yaml",
    params:
        config=resolved_config,
        num_examples=config["report"]["num_examples"],
    # the figures are drawn side by side, one process each
    threads: 2
    log:
        "results/logs/make_report.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m etcbench report --accuracy {input.accuracy} --compression {input.compression} "
        "--examples {input.examples} --num-examples {params.num_examples} "
        "--attacks {input.attacks} --attack-examples {input.attack_examples} "
        "--position-leaks {input.position_leaks} --metrics {input.metrics} --keys {input.key_records} "
        "--config {params.config:q} --threads {threads} --out-dir results/report 2> {log}"
