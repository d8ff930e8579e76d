"""The paper-ready tables: the comparison table (mean ± 95% CI over seeds, booktabs, a paper column only where a
published value is known), the per-scheme table (accuracy cost, JPEG, best attack, key mismatch), the training
history, and the per-column formatting and human column names of the Markdown and LaTeX files."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_attack_report import _record as _attack_record

from etcbench.report import tables
from etcbench.report.build import build_report

SETTING = {"dataset": "cifar10", "image_size": 64, "block_size": 16}
SMALL = {"dataset": "cifar10", "image_size": 32, "block_size": 4}


def _acc_record(model: str, scheme: str, seed: int, top1: float, quality: int | None = None, ss: str = "none",
                setting: dict = SETTING) -> dict:
    return {**setting, "model": model, "scheme": scheme, "jpeg_quality": quality, "subsampling": ss, "seed": seed,
            "top1": top1, "loss": 1.0, "n_test": 100}


# uncompressed top-1 over three seeds; convmixer is not trained on etc; a second setting with one seed
TOP1 = {("vit", "plain"): [0.80, 0.83, 0.87], ("vit", "etc"): [0.70, 0.71, 0.75],
        ("convmixer", "plain"): [0.6, 0.6, 0.6]}


def _comparison_records() -> list[dict]:
    records = [_acc_record(m, s, seed, v) for (m, s), values in TOP1.items() for seed, v in enumerate(values)]
    records += [_acc_record("resnet18", "le", 0, 0.5, setting=SMALL), _acc_record("resnet18", "plain", 0, 0.9,
                                                                                  setting=SMALL)]
    return records


def _half_width(values: list[float]) -> float:
    """The 95% Student-t half-width of the mean, in percent, computed here independently of etcbench.report.stats."""
    x = np.asarray(values) * 100
    return stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))


def test_comparison_cells_are_mean_and_ci_half_width_with_one_decimal():
    table = tables.comparison_table(tables.accuracy_table(_comparison_records()))
    assert list(table.columns) == ["dataset", "image_size", "block_size", "model", "n_seeds", "plain", "etc", "le"]
    rows = table.set_index(["image_size", "model"])
    for (model, scheme), values in TOP1.items():
        mean, half = np.mean(values) * 100, _half_width(values)
        assert rows.loc[(64, model), scheme] == f"{mean:.1f} ± {half:.1f}"
    assert rows.loc[(64, "vit"), "plain"] == "83.3 ± 8.7"  # by hand: mean 83.33, sd 3.51, t(0.975, 2) = 4.303
    assert rows.loc[(64, "convmixer"), "plain"] == "60.0 ± 0.0"
    assert pd.isna(rows.loc[(64, "convmixer"), "etc"]) and pd.isna(rows.loc[(64, "vit"), "le"])  # not trained
    assert rows.loc[(32, "resnet18"), "le"] == "50.0"  # one seed: the mean alone
    assert rows.loc[(64, "vit"), "n_seeds"] == "3" and rows.loc[(32, "resnet18"), "n_seeds"] == "1"
    assert "Seeds column" in tables.comparison_caption(table)
    three = tables.comparison_table(tables.accuracy_table(_comparison_records()[:-2]))
    assert "over 3 seeds" in tables.comparison_caption(three) and "95% Student-t" in tables.comparison_caption(three)


def test_comparison_files_have_booktabs_setting_blocks_and_no_paper_column(tmp_path):
    table = tables.comparison_table(tables.accuracy_table(_comparison_records()))
    csv, md, tex = (p.read_text(encoding="utf-8") for p in tables.write_table(
        table, tmp_path / "comparison", tables.comparison_caption(table), group_by=["dataset", "image_size",
                                                                                    "block_size"]))
    assert csv.splitlines()[0] == "dataset,image_size,block_size,model,n_seeds,plain,etc,le"
    assert "83.3 ± 8.7" in csv and "83.3 ± 8.7" in md and r"83.3 $\pm$ 8.7" in tex
    assert "| Model " in md and "| Seeds " in md and "| plain " in md  # human names; schemes keep theirs
    vit = next(line for line in md.splitlines() if "| vit " in line)
    assert [c.strip() for c in vit.strip("|").split("|")][-3:] == ["83.3 ± 8.7", "72.0 ± 6.6", "–"]
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\begin{tabular}" in tex
    # a rule between the two settings' blocks: header rule + one between blocks
    assert tex.count(r"\midrule") == 2
    body = tex[tex.index(r"\midrule"):]
    assert body.index("32 & 4") < body.index(r"\midrule", 1) < body.index("64 & 16")
    for text in (csv, md, tex):
        assert "paper" not in text.lower() and "not available" not in text
    assert tables.PUBLISHED_TOP1 == {}  # the paper's numbers are not known (docs/paper.md §12)


def test_the_comparison_shows_each_models_parameter_count_from_its_cards():
    acc = tables.accuracy_table(_comparison_records())
    counts = {("cifar10", 64, 16, "vit"): [5_524_234, 5_524_234, 5_523_466], ("cifar10", 64, 16, "convmixer"): [
        812_000], ("cifar10", 32, 4, "resnet18"): [11_173_962]}
    table = tables.comparison_table(acc, parameters=counts)
    assert list(table.columns)[:6] == ["dataset", "image_size", "block_size", "model", "parameters_m", "n_seeds"]
    rows = table.set_index(["image_size", "model"])["parameters_m"]
    assert (rows[(64, "vit")], rows[(64, "convmixer")], rows[(32, "resnet18")]) == ("5.52", "0.81", "11.17")
    spread = tables.comparison_table(acc, parameters={("cifar10", 64, 16, "vit"): [910_000, 930_000]})
    rows = spread.set_index(["image_size", "model"])["parameters_m"]
    assert rows[(64, "vit")] == "0.91–0.93" and pd.isna(rows[(32, "resnet18")])  # no card: missing, not guessed
    assert "parameters_m" not in tables.comparison_table(acc).columns
    assert tables.column_label("parameters_m") == "Parameters (M)"


def test_a_known_published_value_adds_its_paper_column_once(tmp_path):
    acc = tables.accuracy_table(_comparison_records())
    table = tables.comparison_table(acc, published={("cifar10", 64, 16, "vit", "etc"): 96.62})
    assert [c for c in table.columns if "paper" in c] == ["paper_etc"]
    assert list(table.columns).index("paper_etc") == list(table.columns).index("etc") + 1
    rows = table.set_index(["image_size", "model"])
    assert rows.loc[(64, "vit"), "paper_etc"] == "96.6" and pd.isna(rows.loc[(64, "convmixer"), "paper_etc"])
    assert "paper" in tables.comparison_caption(table)
    md = tables.write_table(table, tmp_path / "c", tables.comparison_caption(table))[1].read_text(encoding="utf-8")
    assert "| etc (paper) " in md and md.count("(paper)") == 1
    # a published value for a cell of another setting does not create a column
    other = tables.comparison_table(acc, published={("cifar10", 224, 16, "vit", "etc"): 96.6})
    assert not [c for c in other.columns if "paper" in c]


def _scheme_inputs():
    acc = [_acc_record("vit", "plain", s, v) for s, v in enumerate([0.80, 0.84])]
    acc += [_acc_record("vit", "etc", s, v) for s, v in enumerate([0.70, 0.72])]
    acc += [_acc_record("convmixer", "etc", 0, 0.5)]  # no plain convmixer: no accuracy cost
    for quality in (50, 70, 90):
        for ss, drop in (("444", 0.0), ("420", 0.1)):
            acc += [_acc_record("vit", scheme, s, base - drop - (90 - quality) / 1000, quality, ss)
                    for scheme, values in (("plain", [0.80, 0.84]), ("etc", [0.70, 0.72]))
                    for s, base in enumerate(values)]
            acc.append(_acc_record("convmixer", "etc", 0, 0.5 - drop, quality, ss))
    comp = []
    for scheme, subsamplings in (("plain", ("444", "420")), ("etc", ("444", "420")), ("etc-gray", ("420",))):
        for quality in (50, 70, 90):
            for ss in subsamplings:
                comp.append({**SETTING, "scheme": scheme, "jpeg_quality": quality, "subsampling": ss,
                             "bpp": 3.0 + quality / 100 + (ss == "420"), "bpp_std": 0.1, "header_bytes": 600.0,
                             "payload_bpp": 1.0 + quality / 100 + (ss == "420") + (scheme == "etc"),
                             "payload_bpp_std": 0.1, "psnr": 30.0 + quality / 10 - (ss == "420"), "psnr_std": 0.5,
                             "n_images": 100, "jpeg_aligned": True, "jpeg_mode": "ycbcr"})
    attacks = [_attack_record("plain", "none", 1.0), _attack_record("plain", "itn", 0.85, native=0.9),
               _attack_record("plain", "gan", 0.1, native=0.15),  # gan's control fails: gan is under-trained
               _attack_record("etc", "none", 0.05), _attack_record("etc", "itn", 0.45),
               _attack_record("etc", "gan", 0.9), _attack_record("etc", "fr", 0.2),
               _attack_record("etc", "kpa", 0.3, known_pairs=1), _attack_record("etc", "kpa", 0.6, known_pairs=2),
               _attack_record("etc-gray", "none", 0.04)]
    mismatch = [{**SETTING, "model": "vit", "scheme": "etc", "seed": s, "test_key": key, "top1": v}
                for s, (own, other) in enumerate([(0.70, 0.10), (0.72, 0.12)])
                for key, v in (("own", own), ("other", other))]
    return (tables.accuracy_table(acc), tables.compression_table(comp), tables.attack_table(attacks),
            tables.key_mismatch_table(mismatch))


def test_scheme_table_values_from_hand_built_records():
    acc, comp, attacks, mismatch = _scheme_inputs()
    table = tables.scheme_table(acc, comp, attacks, mismatch)
    assert table["scheme"].tolist() == ["plain", "etc", "etc-gray"]  # etc-gray: compressed and attacked, no model
    assert list(table.columns) == [
        "dataset", "image_size", "block_size", "scheme", "delta_top1_pp_convmixer", "delta_top1_pp_vit",
        "jpeg_subsampling", "jpeg_q70_top1_pct_convmixer", "jpeg_q70_top1_pct_vit", "jpeg_q70_payload_bpp",
        "jpeg_q70_psnr", "other_key_top1_pct_convmixer", "other_key_top1_pct_vit", "best_attack", "best_attack_ssim"]
    etc = table.set_index("scheme").loc["etc"]
    assert etc["delta_top1_pp_vit"] == pytest.approx(71.0 - 82.0)  # percentage points, means over seeds
    assert math.isnan(etc["delta_top1_pp_convmixer"])  # no plain convmixer: not estimated
    # JPEG at the quality closest to 75 (70), at 4:4:4
    assert etc["jpeg_subsampling"] == "444"
    assert etc["jpeg_q70_top1_pct_vit"] == pytest.approx(71.0 - 2.0)
    assert etc["jpeg_q70_top1_pct_convmixer"] == pytest.approx(50.0)
    assert etc["jpeg_q70_payload_bpp"] == pytest.approx(2.7) and etc["jpeg_q70_psnr"] == pytest.approx(37.0)
    # the best attack is kpa with 2 pairs: gan's 0.9 is left out (under-trained), "none" is never one
    assert (etc["best_attack"], etc["best_attack_ssim"]) == ("kpa-2", 0.6)
    assert etc["other_key_top1_pct_vit"] == pytest.approx(11.0) and math.isnan(etc["other_key_top1_pct_convmixer"])
    plain = table.set_index("scheme").loc["plain"]
    assert plain["delta_top1_pp_vit"] == 0.0 and (plain["best_attack"], plain["best_attack_ssim"]) == ("itn", 0.85)
    assert math.isnan(plain["other_key_top1_pct_vit"])  # plain has no key
    gray = table.set_index("scheme").loc["etc-gray"]
    assert gray["jpeg_subsampling"] == "420" and gray["jpeg_q70_payload_bpp"] == pytest.approx(2.7)
    assert gray["best_attack"] is None and math.isnan(gray["best_attack_ssim"])  # only the "none" floor
    assert gray[["delta_top1_pp_vit", "jpeg_q70_top1_pct_vit", "other_key_top1_pct_vit"]].isna().all()


def test_scheme_table_files_print_missing_pieces_as_a_dash(tmp_path):
    acc, comp, attacks, mismatch = _scheme_inputs()
    table = tables.scheme_table(acc, comp, attacks, mismatch)
    caption = tables.scheme_caption(table)
    assert "quality 70" in caption and "payload" in caption
    csv, md, tex = (p.read_text(encoding="utf-8") for p in tables.write_table(table, tmp_path / "schemes", caption))
    assert "delta_top1_pp_vit" in csv.splitlines()[0] and "kpa-2" in csv
    header = md.splitlines()[2]
    for label in ("Scheme", "Δ top-1 vs plain, vit (pp)", "Top-1 at JPEG q70, vit (%)", "Payload bpp at q70",
                  "PSNR at q70 (dB)", "Top-1 with another key, vit (%)", "Best attack", "JPEG subsampling"):
        assert f" {label} " in header, label
    etc = [c.strip() for c in next(line for line in md.splitlines() if "| etc " in line).strip("|").split("|")]
    assert etc[4:] == ["–", "-11.0", "4:4:4", "50.0", "69.0", "2.700", "37.00", "–", "11.0", "kpa-2", "0.600"]
    gray = next(line for line in md.splitlines() if "| etc-gray " in line)
    assert gray.count("–") == 8 and "4:2:0" in gray
    assert r"$\Delta$ top-1 vs plain, vit (pp)" in tex and " -- " in tex and r"\toprule" in tex


def test_a_split_table_has_one_part_per_setting_without_its_empty_columns(tmp_path):
    df = pd.DataFrame({"dataset": ["cifar10"] * 3, "image_size": [64, 64, 32], "block_size": [16, 16, 4],
                       "scheme": ["plain", "etc", "le"], "delta_top1_pp_vit": [0.0, -5.0, np.nan],
                       "delta_top1_pp_resnet18": [np.nan, np.nan, -3.0], "best_attack": ["kpa-1", None, None]})
    csv, md, tex = (p.read_text(encoding="utf-8") for p in tables.write_table(
        df, tmp_path / "s", "Schemes", split_by=["dataset", "image_size", "block_size"]))
    assert csv.splitlines()[0].split(",") == list(df.columns) and len(csv.splitlines()) == 4  # the CSV: one table
    first, second = md.split("### ")[1:]
    assert first.startswith("cifar10, 64 px, block 16\n") and second.startswith("cifar10, 32 px, block 4\n")
    assert "vit" in first and "resnet18" not in first and "Best attack" in first and "Image size" not in first
    assert "resnet18" in second and "vit" not in second and "Best attack" not in second  # missing throughout
    assert [c.strip() for c in first.splitlines()[5].strip("|").split("|")] == ["etc", "-5.0", "–"]
    assert tex.count(r"\begin{table}") == 2 and r"\label{tab:s-2}" in tex
    assert r"\caption{Schemes (cifar10, 32 px, block 4)}" in tex


def test_scheme_table_falls_back_to_the_file_rate_and_to_dashes():
    acc, comp, attacks, mismatch = _scheme_inputs()
    table = tables.scheme_table(acc, comp.drop(columns=["payload_bpp", "payload_bpp_std"]), attacks, mismatch)
    assert "jpeg_q70_payload_bpp" not in table.columns
    assert table.set_index("scheme").loc["etc", "jpeg_q70_bpp"] == pytest.approx(3.7)
    assert "payload" not in tables.scheme_caption(table) and tables.column_label("jpeg_q70_bpp") == "bpp at q70"
    # a chosen quality; no compression, attack or key-mismatch records: their columns stay missing
    alone = tables.scheme_table(acc, jpeg_quality=50).set_index("scheme")
    assert alone.loc["etc", "jpeg_q50_top1_pct_vit"] == pytest.approx(71.0 - 4.0)
    assert alone["jpeg_q50_bpp"].isna().all() and alone["best_attack"].isna().all()
    assert alone["other_key_top1_pct_vit"].isna().all()
    assert tables._closest_quality([50, 70, 80]) == 80 and tables._closest_quality([]) is None  # ties: the higher


def test_formatting_per_column_and_human_names(tmp_path):
    df = pd.DataFrame({"scheme": ["etc", "plain"], "subsampling": ["420", "444"], "n_images": [9.0, 10.0],
                       "ratio_thing": [0.123456, np.nan], "jpeg_aligned": [True, False], "psnr": [30.0, np.inf],
                       "top1_mean_pct": [81.25, 9.0]})
    md = tables.write_table(df, tmp_path / "t", "T")[1].read_text(encoding="utf-8")
    lines = md.splitlines()
    assert lines[2] == ("| Scheme   | Subsampling   |   Images |   Ratio thing | Fits JPEG grid   |   PSNR (dB) |"
                        "   Top-1 (%) |")
    assert [c.strip() for c in lines[4].strip("|").split("|")] == ["etc", "4:2:0", "9", "0.1235", "yes", "30.00",
                                                                     "81.2"]
    assert [c.strip() for c in lines[5].strip("|").split("|")] == ["plain", "4:4:4", "10", "–", "no", "inf", "9.0"]
    assert "9.0000" not in md


def test_history_table_reads_metrics_records():
    record = {**SETTING, "model": "vit", "scheme": "etc", "seed": 1}
    history = [{"epoch": e, "steps": 10 * e, "train_loss": 2.0 / e, "train_top1": 0.1 * e, "val_top1": 0.08 * e,
                "val_loss": 2.1 / e, "lr": 0.1} for e in (2, 1)]
    table = tables.history_table([{"record": record, "history": history}])
    assert list(table.columns) == tables.HISTORY_COLUMNS and table["epoch"].tolist() == [1, 2]
    assert table["train_top1"].tolist() == pytest.approx([0.1, 0.2])
    with pytest.raises(tables.EtcbenchError, match="history"):
        tables.history_table([{"record": record}])
    with pytest.raises(tables.EtcbenchError, match="no training history"):
        tables.history_table([{"record": record, "history": []}])


def _report_inputs(tmp_path):
    """Evaluation and training records of three seeds of the TOP1 cells."""
    records = _comparison_records()[:-2]
    evaluations = []
    for (model, scheme) in TOP1:
        for seed in range(3):
            rec = next(r for r in records if (r["model"], r["scheme"], r["seed"]) == (model, scheme, seed))
            base = {k: rec[k] for k in ("dataset", "image_size", "block_size", "model", "scheme", "seed")}
            path = tmp_path / f"{model}-{scheme}-{seed}.json"
            path.write_text(json.dumps({
                "records": [rec, {**rec, "jpeg_quality": 90, "subsampling": "444", "top1": rec["top1"] - 0.05}],
                "key_mismatch": [{**base, "test_key": "own", "top1": rec["top1"]}],
                "predictions": [{**base, "test_key": "own", "jpeg_quality": None, "subsampling": "none",
                                 "num_classes": 2, "truth": [0] * 50 + [1] * 50,
                                 "predicted": [0] * 40 + [1] * 10 + [0] * 5 + [1] * 45}]}))
            evaluations.append(path)
            metrics = tmp_path / f"{model}-{scheme}-{seed}.metrics.json"
            metrics.write_text(json.dumps({"record": rec, "history": [
                {"epoch": 1, "train_loss": 2.0, "train_top1": 0.3, "val_top1": 0.25, "val_loss": 2.1},
                {"epoch": 2, "train_loss": 1.5, "train_top1": 0.5, "val_top1": 0.45, "val_loss": 1.6}]}))
    return evaluations, sorted(tmp_path.glob("*.metrics.json"))


def test_build_report_writes_the_paper_tables_and_figures(tmp_path):
    evaluations, metrics = _report_inputs(tmp_path)
    out = tmp_path / "report"
    written = build_report(accuracy=evaluations, compression=[], out_dir=out, metrics=metrics)
    names = {p.relative_to(out).as_posix() for p in written}
    for stem in ("comparison", "schemes", "summary", "accuracy", "key_mismatch"):
        assert {f"{stem}.csv", f"{stem}.md", f"{stem}.tex"} <= names, stem
    for figure in ("training_curves", "confusion_matrices", "top1_by_model_scheme", "top1_vs_jpeg_quality"):
        assert {f"figures/{figure}.png", f"figures/{figure}.pdf"} <= names, figure
    for path in out.glob("*.*"):
        assert "not available" not in path.read_text(encoding="utf-8"), path
    assert "paper" not in (out / "comparison.md").read_text(encoding="utf-8").lower()
    schemes = pd.read_csv(out / "schemes.csv")
    assert schemes.set_index("scheme").loc["etc", "delta_top1_pp_vit"] == pytest.approx(-11.3333333)


def _broken_figure(*args, **kwargs):
    from etcbench.errors import EtcbenchError

    raise EtcbenchError("the confusion figure fails")


def test_figures_drawn_side_by_side_are_the_serial_ones_and_a_failure_leaves_no_report(tmp_path, monkeypatch):
    from etcbench.report import figures

    evaluations, metrics = _report_inputs(tmp_path)
    serial = build_report(accuracy=evaluations, compression=[], out_dir=tmp_path / "serial", metrics=metrics)
    parallel = build_report(accuracy=evaluations, compression=[], out_dir=tmp_path / "parallel", metrics=metrics,
                            workers=2)
    names = sorted(p.relative_to(tmp_path / "serial").as_posix() for p in serial)
    assert sorted(p.relative_to(tmp_path / "parallel").as_posix() for p in parallel) == names
    assert len(names) == len(set(names)) and any(n.endswith(".png") for n in names)
    for name in names:  # the same bytes: figures carry no timestamps
        assert (tmp_path / "parallel" / name).read_bytes() == (tmp_path / "serial" / name).read_bytes(), name

    monkeypatch.setattr(figures, "plot_confusion_matrices", _broken_figure)  # module level: workers unpickle it
    with pytest.raises(figures.EtcbenchError, match="the confusion figure fails"):
        build_report(accuracy=evaluations, compression=[], out_dir=tmp_path / "failed", metrics=metrics, workers=2)
    assert not [p for p in (tmp_path / "failed").rglob("*") if p.is_file()]
