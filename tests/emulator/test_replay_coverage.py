"""The recording-replay suite covers every recording: each transcript in
tests/fixtures/transcripts is loaded, by its file name, by a test of the
emulator (found by walking the test modules with `ast`)."""

from __future__ import annotations

import ast
from pathlib import Path

HERE = Path(__file__).parent
TRANSCRIPTS = HERE.parent / "fixtures" / "transcripts"


def names_used_by_emulator_tests() -> set[str]:
    found: set[str] = set()
    for module in HERE.glob("test_*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
    return found


def test_every_transcript_is_replayed_against_the_emulator() -> None:
    transcripts = {p.name for p in TRANSCRIPTS.iterdir()}
    assert len(transcripts) >= 37
    assert sorted(transcripts - names_used_by_emulator_tests()) == []
