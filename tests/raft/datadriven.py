"""Data-driven test files: blocks of a command line, `----`, then the expected output.

Used by the interaction tests and the quorum table. Comment lines (`#`) before a command are
kept; an empty line ends the output. `render` writes the blocks back (REWRITE=1).
"""

from __future__ import annotations


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
