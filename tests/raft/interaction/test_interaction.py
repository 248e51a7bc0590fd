"""Runs the transcript scripts in testdata/: each block is a command, `----`, the output.

REWRITE=1 regenerates the expected output (review the diff before committing it).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from tests.raft.datadriven import parse, render
from tests.raft.interaction.env import InteractionEnv

TESTDATA = Path(__file__).parent / "testdata"
SCRIPTS = sorted(TESTDATA.glob("*.txt"))


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
