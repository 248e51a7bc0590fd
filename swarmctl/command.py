"""The shape of a swarmctl command: the parser class, the handler type, shared list options.

swarmctl layer. `swarmctl.cli` builds the parser tree from the `register` function of each
module in `swarmctl.commands`; each verb's parser stores its handler with `set_defaults(handler=
...)`. A handler gets the connected Client and the parsed flags and returns the text to print on
stdout, so it never writes to the terminal itself and the entry point owns all printing and error
handling.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from swarmctl.client import Client
from swarmd import errors

Handler = Callable[[Client, argparse.Namespace], Awaitable[str]]


class UsageError(errors.InvalidArgument):
    """A command line argparse refused (unknown flag, missing argument, bad value)."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are exceptions, so that the entry point prints one line.

    argparse would print the usage and exit 2; swarmctl's contract is one line and exit 1.
    Abbreviated flags are off: `--env` on `service update` must be an unknown flag, not a
    guess between `--env-add` and `--env-rm`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing usage and exiting."""
        raise UsageError(f"{message} (see '{self.prog} --help')")


def add_verb(
    sub: argparse._SubParsersAction[Parser], name: str, handler: Handler, help_text: str
) -> Parser:
    """A verb's parser (`service create`), wired to its handler."""
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    return parser


def add_group(
    sub: argparse._SubParsersAction[Parser], name: str, help_text: str
) -> argparse._SubParsersAction[Parser]:
    """A resource's parser (`service`) and the subparsers for its verbs."""
    parser = sub.add_parser(name, help=help_text, description=help_text)
    verbs = parser.add_subparsers(title="commands", dest="verb", metavar="COMMAND")
    verbs.required = True
    return verbs


def add_list_options(parser: Parser) -> None:
    """`-q` (ids only) and `--format table|json`, shared by every list command."""
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the ids")
    parser.add_argument(
        "--format", choices=("table", "json"), default="table", help="output format"
    )


__all__ = ["Handler", "Parser", "UsageError", "add_group", "add_list_options", "add_verb"]
