"""Run manifest: what ran, where, with which software, for how long (attached to every result record)."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["manifest", "package_versions", "git_state"]

_PACKAGES = ("etcbench", "numpy", "torch", "torchvision", "timm", "pillow", "scikit-image", "pandas", "snakemake")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    from .jpeg import libjpeg_version

    out["jpeg"] = libjpeg_version()
    return out


def git_state() -> dict[str, Any]:
    """Commit and dirty flag of the etcbench checkout (None outside a git work tree)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def device_info(device: Any = None) -> dict[str, Any]:
    info: dict[str, Any] = {"hostname": socket.gethostname(), "platform": platform.platform()}
    if "torch" in sys.modules:
        import torch

        info["threads"] = torch.get_num_threads()
        if device is not None:
            info["device"] = str(device)
            if str(device).startswith("cuda"):
                info["device_name"] = torch.cuda.get_device_name(device)
                info["cuda"] = torch.version.cuda
    return info


def manifest(stage: str, started: float, ended: float, device: Any = None, **extra: Any) -> dict[str, Any]:
    """Everything needed to tell how a record was made; ``started``/``ended`` are ``time.time()`` values."""

    def iso(t: float) -> str:
        return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")

    return {
        "stage": stage,
        "started": iso(started),
        "ended": iso(ended),
        "wall_s": round(ended - started, 3),
        "versions": package_versions(),
        "git": git_state(),
        "machine": device_info(device),
        **extra,
    }
