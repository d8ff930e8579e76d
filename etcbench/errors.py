"""The one exception type the CLI turns into a single clear line and a non-zero exit."""

from __future__ import annotations


class EtcbenchError(Exception):
    """A problem with the user's input (file, config, shape) that the user can fix."""
