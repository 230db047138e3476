"""The one exception a config problem raises, carrying every problem found.

Each part of the loader appends `"<path>: <message>"` lines to one list as it
goes and raises this once at the end, so a single edit fixes them all.
"""

from __future__ import annotations


class ConfigError(Exception):
    """All problems found in a config, each `"<path>: <message>"`.

    Collected rather than raised one by one so a single edit fixes them all.
    """

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors
