"""Name / id / id-prefix resolution order and its errors, over an in-memory lister.

The lister applies ListFilters the way the manager does (names case-insensitive, id prefixes
exact); the e2e tests run the same resolution against a real swarmd.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from swarmctl.resolve import Kind, resolve
from swarmd import errors
from swarmd.api import control_pb2, objects_pb2


def _secret(secret_id: str, name: str) -> objects_pb2.Secret:
    secret = objects_pb2.Secret(id=secret_id)
    secret.spec.annotations.name = name
    return secret


OBJECTS = [
    _secret("abc111", "alpha"),
    _secret("abc222", "beta"),
    _secret("xyz999", "abc"),
    _secret("beta", "gamma"),
]


async def _list(_client: Any, f: control_pb2.ListFilters) -> Sequence[objects_pb2.Secret]:
    out = OBJECTS
    if f.names:
        out = [o for o in out if o.spec.annotations.name.lower() in {n.lower() for n in f.names}]
    if f.id_prefixes:
        out = [o for o in out if any(o.id.startswith(p) for p in f.id_prefixes)]
    return out


KIND: Kind[objects_pb2.Secret] = Kind("secret", _list)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("abc111", "abc111"),  # full id
        ("ALPHA", "abc111"),  # name, case-insensitive
        ("abc1", "abc111"),  # unique prefix
        ("abc", "xyz999"),  # an exact name beats an ambiguous prefix
        ("beta", "beta"),  # an exact id beats a name
        ("xy", "xyz999"),
    ],
)
async def test_resolution_order(ref, expected) -> None:
    assert (await resolve(None, KIND, ref)).id == expected  # type: ignore[arg-type]


async def test_ambiguous_prefix_names_the_candidates() -> None:
    with pytest.raises(errors.InvalidArgument) as err:
        await resolve(None, KIND, "ab")  # type: ignore[arg-type]
    assert str(err.value) == (
        "secret id prefix ab is ambiguous: it matches 2 secrets (abc111, abc222); "
        "give more of the id or the name"
    )


async def test_not_found_and_empty() -> None:
    with pytest.raises(errors.NotFound, match=r"^secret nope not found$"):
        await resolve(None, KIND, "nope")  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidArgument, match="a secret name or id is required"):
        await resolve(None, KIND, "")  # type: ignore[arg-type]
