"""Join tokens: format, digest pinning, clear errors, constant-time comparison."""

from __future__ import annotations

import pytest

from swarmd import errors
from swarmd.ca.rootca import RootCA
from swarmd.ca.tokens import new_join_token, parse_join_token, tokens_equal


@pytest.fixture(scope="module")
def root() -> RootCA:
    return RootCA.create()


def test_token_format_and_digest_round_trip(root: RootCA):
    token = new_join_token(root.cert_pem)
    prefix, version, digest, secret = token.split("-")
    assert (prefix, version, len(digest), len(secret)) == ("SWMTKN", "1", 50, 25)
    parsed = parse_join_token(token)
    assert parsed.digest == root.digest
    assert parsed.secret == secret
    assert "redacted" in repr(parsed)
    assert secret not in repr(parsed)


def test_tokens_share_digest_and_differ_in_secret(root: RootCA):
    a, b = new_join_token(root.cert_pem), new_join_token(root.cert_pem)
    assert a != b
    assert a.rsplit("-", 1)[0] == b.rsplit("-", 1)[0]


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "expected the form SWMTKN-1-<digest>-<secret>"),
        ("SWMTKN-1-abc", "expected the form SWMTKN-1-<digest>-<secret>"),
        ("XXX-1-" + "0" * 50 + "-" + "0" * 25, "expected the form"),
        ("SWMTKN-2-" + "0" * 50 + "-" + "0" * 25, "unsupported version '2'"),
        ("SWMTKN-1-" + "0" * 49 + "-" + "0" * 25, "digest must be 50 base36 characters"),
        ("SWMTKN-1-" + "0" * 49 + "!-" + "0" * 25, "digest must be 50 base36 characters"),
        ("SWMTKN-1-" + "0" * 50 + "-" + "0" * 24, "secret must be 25 base36 characters"),
        ("SWMTKN-1-" + "z" * 50 + "-" + "0" * 25, "digest is out of range"),
    ],
)
def test_malformed_tokens_are_refused_clearly(token: str, message: str):
    with pytest.raises(errors.InvalidArgument, match="invalid join token") as exc:
        parse_join_token(token)
    assert message in str(exc.value)


def test_tokens_equal():
    assert tokens_equal("abc", "abc")
    assert not tokens_equal("abc", "abd")
    assert not tokens_equal("", "")
