"""Runs the transcript scripts in testdata/: each block is a command, `----`, the output.

REWRITE=1 regenerates the expected output (review the diff before committing it).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from tests.raft.interaction.env import InteractionEnv

TESTDATA = Path(__file__).parent / "testdata"
SCRIPTS = sorted(TESTDATA.glob("*.txt"))


def parse(text: str) -> list[tuple[list[str], str]]:
    """Blocks of (leading comment/blank lines + command line, expected output)."""
    blocks: list[tuple[list[str], str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        head: list[str] = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith("#")):
            if lines[i].strip():
                head.append(lines[i])
            i += 1
        if i >= len(lines):
            break
        head.append(lines[i])
        i += 1
        if i >= len(lines) or lines[i] != "----":
            raise ValueError(f"line {i + 1}: expected ---- after the command {head[-1]!r}")
        i += 1
        expected: list[str] = []
        while i < len(lines) and lines[i].strip():
            expected.append(lines[i])
            i += 1
        blocks.append((head, "\n".join(expected)))
    return blocks


def render(blocks: list[tuple[list[str], str]]) -> str:
    parts: list[str] = []
    for head, output in blocks:
        parts.extend(head)
        parts.append("----")
        parts.append(output)
        parts.append("")
    return "\n".join(parts).rstrip("\n") + "\n"


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_interaction(script: Path) -> None:
    text = script.read_text()
    blocks = parse(text)
    env = InteractionEnv()
    actual = [(head, env.run(head[-1])) for head, _ in blocks]
    rendered = render(actual)
    if os.environ.get("REWRITE") == "1":
        script.write_text(rendered)
        return
    if rendered != text:
        diff = "\n".join(
            difflib.unified_diff(
                text.splitlines(), rendered.splitlines(), "expected", "actual", lineterm=""
            )
        )
        pytest.fail(f"{script.name}: transcript differs (REWRITE=1 to regenerate)\n{diff}")


def test_interaction_scripts_exist() -> None:
    names = {p.stem for p in SCRIPTS}
    required = {"election", "pre_vote", "check_quorum", "replication", "snapshot"}
    required |= {"confchange", "leader_transfer", "read_index", "crash_restart"}
    assert required <= names
