"""Syntax of image references, as docker's distribution/reference grammar (ParseNormalizedNamed).

Manager layer, pure. `reference_error(ref)` returns why a reference is malformed, or None. The
regular expressions are the grammar's, rewritten without nested optional quantifiers: Go's RE2
never backtracks, Python's `re` does, and `[a-z0-9]+(?:[-]*[a-z0-9]+)*` is exponential on
"aaaa...A".
"""

from __future__ import annotations

import re

from swarmd.manager.controlapi.validation.fieldrules import show

_MAX_NAME = 255
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_HEX64 = re.compile(r"[a-f0-9]{64}")


def _split_domain(name: str) -> tuple[str, str]:
    """docker's splitDockerDomain: the first component is a registry when it looks like a host."""
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        return first, rest
    return "", name


def _split_tag(name: str) -> tuple[str, str | None]:
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        return name[:colon], name[colon + 1 :]
    return name, None


def _name_error(name: str) -> str | None:
    if len(name) > _MAX_NAME:
        return f"repository name must not be longer than {_MAX_NAME} characters"
    domain, path = _split_domain(name)
    if domain and not _DOMAIN.fullmatch(domain):
        return f"invalid registry host {show(domain)}"
    if not domain and _HEX64.fullmatch(path):
        return "a 64-character hexadecimal string is an image id, not a repository name"
    if path != path.lower():
        return "repository name must be lowercase"
    for component in path.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            return (
                "repository name components are lowercase letters and digits "
                "separated by '.', '_', '__' or '-'"
            )
    return None


def reference_error(ref: str) -> str | None:
    """Why `ref` is not a valid image reference (name[:tag][@digest]); None when it is."""
    if not ref:
        return "an image is required"
    if ref != ref.strip() or any(c.isspace() for c in ref):
        return "must not contain whitespace"
    name, _, digest = ref.partition("@")
    if "@" in digest:
        return "at most one '@digest' is allowed"
    if digest and not _DIGEST.fullmatch(digest):
        return "digest must be algorithm:hex with at least 32 hex digits"
    name, tag = _split_tag(name)
    if tag is not None and not _TAG.fullmatch(tag):
        return (
            "tag must be 1-128 characters of letters, digits, '_', '.' and '-', "
            "not starting with '.' or '-'"
        )
    if not name:
        return "repository name is empty"
    return _name_error(name)


__all__ = ["reference_error"]
