"""Packaging facts that must agree across files: the license the package declares is the one it ships."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_license_file_matches_the_declared_license():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]["text"]
    text = (REPO / "LICENSE").read_text()
    assert declared == "MIT" and text.splitlines()[0] == "MIT License"
    assert "Permission is hereby granted, free of charge" in text
