"""The data of a new secret or config: read from `-f FILE`, or from stdin (`-f -` or no -f).

swarmctl layer, used by `swarmctl.commands.secret` and `swarmctl.commands.config`. The bytes are
passed on unchanged (no newline stripping: `printf` and `echo` give what they give). Size limits
are the manager's to enforce; an empty value is refused here already, with a hint, because the
usual cause is forgetting to pipe anything in.
"""

from __future__ import annotations

import sys
from pathlib import Path

from swarmd import errors


def read_payload(kind: str, name: str, file: str | None) -> bytes:
    """The data for `kind` `name` from `file` (`-` or None: stdin).

    Raises:
        errors.InvalidArgument: the file cannot be read, or the data is empty.
    """
    if file is None or file == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise errors.InvalidArgument(
                f"no data for {kind} {name}: pipe it to stdin or give -f FILE"
            )
        data = sys.stdin.buffer.read()
        where = "stdin"
    else:
        try:
            data = Path(file).read_bytes()
        except OSError as err:
            raise errors.InvalidArgument(f"cannot read {file}: {err.strerror}") from err
        where = file
    if not data:
        raise errors.InvalidArgument(f"no data for {kind} {name}: {where} is empty")
    return data


__all__ = ["read_payload"]
