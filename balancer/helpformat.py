"""`--help` that shows each option's default next to its help line."""

from __future__ import annotations

import argparse


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Appends `(default: X)` unless there is none to show (None, False, or
    an explicit "default:" already in the help text)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default:" in text:
            return text
        return super()._get_help_string(action) or text
