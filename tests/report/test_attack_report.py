"""The attack part of the report: controls beside learned attacks, the under-trained flag, known-plaintext rows,
position leakage, and the attack figures (SSIM with 95% intervals, semantic leakage, scheme x attack grid)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from etcbench.errors import EtcbenchError
from etcbench.report import figures, tables


def _record(scheme: str, attack: str, ssim: float, native: float | None = None, **extra) -> dict:
    base = {"dataset": "cifar10", "image_size": 64, "block_size": 16, "scheme": scheme, "attack": attack,
            "known_pairs": None, "ssim": ssim, "ssim_std": 0.1, "ssim_ci95": 0.02, "psnr": 20.0, "psnr_std": 1.0,
            "native_size": 32, "ssim_native": ssim + 0.05 if native is None else native, "psnr_native": 22.0,
            "semantic_top1": 0.1 + ssim / 2, "semantic_top1_plain": 0.6, "key_share": None,
            "direct_comparison": None, "neighbour_comparison": None, "largest_component": None,
            "direct_comparison_sym": None, "neighbour_comparison_sym": None, "largest_component_sym": None,
            "ssim_best_candidate": None, "n_images": 100, "attacker_images": 0, "attacker_ciphertexts": 0,
            "attacker_keys": 0, "target_key_ciphertexts": False, "seconds": 1.0}
    return {**base, **extra}


def _records() -> list[dict]:
    return [
        _record("plain", "none", 1.0), _record("plain", "itn", 0.8, native=0.9), _record("plain", "gan", 0.1, 0.15),
        _record("etc", "none", 0.05), _record("etc", "itn", 0.2), _record("etc", "gan", 0.12),
        _record("etc", "fr", 0.09),
        _record("etc", "kpa", 0.7, known_pairs=2, key_share=0.8), _record("etc", "kpa", 1.0, known_pairs=1,
                                                                           key_share=0.5),
    ]


def test_learned_attacks_carry_their_plain_control_and_the_flag():
    table = tables.attack_table(_records())
    assert list(table.columns) == tables.ATTACK_COLUMNS
    rows = table.set_index(["scheme", "attack", "known_pairs"], drop=False)
    # the control is the same attack's SSIM on the plain scheme of the setting, beside every scheme's row
    assert rows.loc[("etc", "itn", pd.NA), "control_ssim"].item() == 0.8
    assert rows.loc[("etc", "itn", pd.NA), "control_ssim_native"].item() == 0.9
    assert not rows.loc[("etc", "itn", pd.NA), "under_trained"].item()  # native control 0.9 >= 0.8
    assert rows.loc[("etc", "gan", pd.NA), "under_trained"].item()  # native control 0.15 < 0.8
    assert rows.loc[("plain", "gan", pd.NA), "under_trained"].item()
    # attacks that do not learn have no control
    assert table.loc[table.attack.isin(["none", "fr", "kpa"]), "control_ssim"].isna().all()
    assert table.loc[table.attack.isin(["none", "fr", "kpa"]), "under_trained"].isna().all()
    # kpa rows sort by their number of pairs; none first within a scheme
    etc = table[table.scheme == "etc"]
    assert etc.attack.iloc[0] == "none" and etc.loc[etc.attack == "kpa", "known_pairs"].tolist() == [1, 2]


def test_without_a_plain_row_there_is_no_control():
    table = tables.attack_table([r for r in _records() if r["scheme"] != "plain"])
    assert table["control_ssim"].isna().all() and table["under_trained"].isna().all()


def test_duplicate_attack_rows_raise():
    with pytest.raises(EtcbenchError, match="duplicate"):
        tables.attack_table(_records() + [_record("etc", "kpa", 0.3, known_pairs=2)])


def test_position_leak_table():
    base = {"dataset": "cifar10", "image_size": 64, "block_size": 16, "model": "vit", "seed": 0, "method": "m",
            "tokens": 16, "identity_share": 0.0, "chance": 1 / 16}
    records = [{**base, "scheme": "etc", "share": 0.5, "share_up_to_symmetry": 0.75},
               {**base, "scheme": "pixel-shuffle", "share": None, "share_up_to_symmetry": None}]
    table = tables.position_leak_table(records[::-1])
    assert list(table.columns) == tables.POSITION_LEAK_COLUMNS and table.scheme.tolist() == ["etc", "pixel-shuffle"]
    assert table.share.iloc[0] == 0.5 and np.isnan(table.share.iloc[1])
    with pytest.raises(EtcbenchError, match="lacks key"):
        tables.position_leak_table([{k: v for k, v in records[0].items() if k != "chance"}])


def test_attack_figures(tmp_path):
    table = tables.attack_table(_records())
    for plot, stem in ((figures.plot_attack_ssim, "ssim"), (figures.plot_semantic_leakage, "semantic")):
        paths = plot(table, tmp_path / stem)
        assert [p.suffix for p in paths] == [".png", ".pdf"] and paths[0].read_bytes()[:4] == b"\x89PNG"
    plain = np.zeros((2, 16, 16, 3), np.uint8)
    grid = {("etc", "none"): plain, ("etc", "itn"): plain, ("plain", "none"): plain,
            ("etc-gray", "fr"): np.zeros((2, 16, 16, 1), np.uint8)}
    paths = figures.plot_attack_grid(plain, grid, tmp_path / "grid")
    assert paths[0].read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(EtcbenchError, match="no attack reconstructions"):
        figures.plot_attack_grid(plain, {}, tmp_path / "empty")
    with pytest.raises(EtcbenchError, match="semantic_top1"):
        figures.plot_semantic_leakage(table.assign(semantic_top1=np.nan), tmp_path / "none")
