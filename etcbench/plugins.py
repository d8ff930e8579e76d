"""Plug-in schemes and attacks in a config: the schema accepts their names, and they are checked before any job.

A third-party package declares entry points in the groups ``etcbench.schemes`` and ``etcbench.attacks``
(``docs/extending.md``); the registries load them (:class:`etcbench.registry.Registry`). What this module adds is
the config's side, run by :func:`etcbench.config.validate`, so by Snakemake before it schedules a job:

* :func:`schema_with_plugins`: the schema's lists of scheme and attack names, and the name patterns built from them,
  extended with the declared entry points' names (read from the installed distributions' metadata, without
  importing them), plus an open ``scheme_options`` entry per plug-in scheme (its options are checked by the scheme's
  constructor, as a built-in scheme's are);
* :func:`check_config_plugins`: every declared plug-in is imported, and each plug-in scheme the grid names is run
  through the quick part of the scheme contract (:func:`etcbench.contract.quick_checks`) at the setting's
  block size. A
  plug-in that does not import, takes a name that is already registered, or breaks the contract stops the run with
  one line naming it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from .registry import PluginError, plugin_label

__all__ = ["GROUPS", "check_config_plugins", "declared_names", "schema_with_plugins"]

GROUPS = {"scheme": "etcbench.schemes", "attack": "etcbench.attacks"}


def declared_names(kind: str) -> list[str]:
    """The names declared in the entry-point group of ``kind`` ("scheme" or "attack") by installed distributions,
    sorted, each once; two distributions declaring one name is a :class:`PluginError`."""
    seen: dict[str, str] = {}
    for ep in metadata.entry_points(group=GROUPS[kind]):
        label = plugin_label(ep)
        if ep.name in seen and seen[ep.name] != label:
            raise PluginError(f"{label}: the {kind} name {ep.name!r} is registered twice (also by {seen[ep.name]})")
        seen[ep.name] = label
    return sorted(seen)


def _extend(node: Any, names: list[str], extra: list[str]) -> None:
    """Add ``extra`` to every ``enum`` equal to the set ``names`` and to every ``(a|b|...)`` alternation of them."""
    alternation = "(" + "|".join(names) + ")"
    wider = "(" + "|".join([*names, *(re.escape(n) for n in extra)]) + ")"
    if isinstance(node, dict):
        enum = node.get("enum")
        if isinstance(enum, list) and set(enum) == set(names):
            node["enum"] = [*enum, *extra]
        if isinstance(node.get("pattern"), str):
            node["pattern"] = node["pattern"].replace(alternation, wider)
        for value in node.values():
            _extend(value, names, extra)
    elif isinstance(node, list):
        for value in node:
            _extend(value, names, extra)


def schema_with_plugins(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the config schema whose scheme and attack names include the declared plug-ins'.

    The built-in names are the schema's own lists (the property names of ``grid[].schemes`` and the attack names of
    ``grid[].attacks``); a plug-in that declares one of them is refused (a name registered twice).
    """
    out = copy.deepcopy(dict(schema))
    setting = out["properties"]["grid"]["items"]["properties"]
    builtin = {"scheme": list(setting["schemes"]["propertyNames"]["enum"]),
               "attack": list(setting["attacks"]["items"]["oneOf"][0]["enum"])}
    for kind, names in builtin.items():
        extra = declared_names(kind)
        taken = sorted(set(extra) & set(names))
        if taken:
            ep = next(e for e in metadata.entry_points(group=GROUPS[kind]) if e.name == taken[0])
            raise PluginError(f"{plugin_label(ep)}: the {kind} name {taken[0]!r} is registered twice (also by a "
                              f"built-in {kind})")
        if extra:
            _extend(out, names, extra)
            if kind == "scheme":
                options = out["properties"]["scheme_options"]["properties"]
                for name in extra:
                    options[name] = {"type": "object", "default": {},
                                     "description": f"Options of the plug-in scheme {name} (its constructor's)."}
    return out


def check_config_plugins(config: Mapping[str, Any]) -> None:
    """Import every declared plug-in (one that does not import would fail the first job that lists the names) and
    run the quick scheme contract on the plug-in schemes the grid names, at each setting's block size; the first
    problem is one :class:`PluginError` line naming the plug-in."""
    schemes, attacks = declared_names("scheme"), declared_names("attack")
    if attacks:
        from .attacks.base import ATTACKS

        ATTACKS.plugins()
    if not schemes:
        return
    from .ciphers import SCHEMES
    from .contract import quick_checks

    labels = SCHEMES.plugins()  # imports them: an import failure, a taken name or a wrong kind raises here
    for setting in config.get("grid", []):
        block = int(setting["block_size"])
        for name in setting.get("schemes", {}):
            if name not in labels:
                continue
            options = config.get("scheme_options", {}).get(name, {})
            failed = [c for c in quick_checks(name, options, block, (2 * block, 4 * block)) if not c.ok]
            if failed:
                raise PluginError(f"{labels[name]} fails its contract at block size {block}: "
                                  f"{failed[0].name}: {failed[0].detail}")
