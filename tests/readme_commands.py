"""The commands of the README's code blocks, as a new user would type them (shared by the tests that run them)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
# the README's example path of a local archive; the tests put the real archive in its place
EXAMPLE_ARCHIVE = "/data/cifar-10-python.tar.gz"


@dataclass(frozen=True)
class Command:
    text: str  # as printed (continuation lines joined)
    block: int  # which bash block of the README
    env: dict[str, str] = field(default_factory=dict)  # what the block exported before it


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.S | re.M)


def bash_commands() -> list[Command]:
    """Every command of the README's ``bash`` blocks: one per line (``\\`` continuations joined), comments skipped
    except ``# or: <command>`` alternatives; ``export`` lines become the environment of the block's later commands."""
    commands = []
    for i, block in enumerate(code_blocks("bash")):
        env: dict[str, str] = {}
        for line in block.replace("\\\n", " ").splitlines():
            line = " ".join(line.split())
            if line.startswith("# or: "):
                line = line[len("# or: "):]
            elif line.startswith("#") or not line:
                continue
            if line.startswith("export "):
                name, _, value = line[len("export "):].partition("=")
                env[name] = value
                continue
            commands.append(Command(line, i, dict(env)))
    return commands


def find(prefix: str) -> list[Command]:
    return [c for c in bash_commands() if c.text.startswith(prefix)]
