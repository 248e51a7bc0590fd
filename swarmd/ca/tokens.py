"""Join tokens: `SWMTKN-1-<root digest>-<secret>`, made at cluster init and on rotation.

CA layer. `bootstrap.init_cluster_ca` and the control API's token rotation call
`new_join_token`; the NodeCA servicer and `join.join` call `parse_join_token`. The digest part pins
the root CA (hex SHA-256 of its DER, written in base36 over 50 characters) so a joining node can
check the manager before sending anything secret; the secret part (16 random bytes, base36 over 25
characters) is what authorises the join. Worker and manager tokens share the digest.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from swarmd import errors
from swarmd.ca.rootca import certificate_digest, load_certificate

PREFIX = "SWMTKN"
VERSION = "1"
DIGEST_LEN = 50
SECRET_LEN = 25
_SECRET_BYTES = 16
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_HEX_DIGEST_LEN = 64


def _to_base36(value: int, width: int) -> str:
    out = []
    while value:
        value, rem = divmod(value, 36)
        out.append(_ALPHABET[rem])
    return "".join(reversed(out)).rjust(width, "0")


@dataclass(frozen=True, slots=True)
class JoinToken:
    """A parsed token: `digest` is the pinned root's hex SHA-256, `secret` the base36 secret."""

    digest: str
    secret: str

    def __repr__(self) -> str:  # never print the secret
        return f"JoinToken(digest={self.digest!r}, secret=<redacted>)"


def new_join_token(ca_cert_pem: bytes) -> str:
    """A fresh token for the root in `ca_cert_pem` (a new secret every call)."""
    digest = certificate_digest(load_certificate(ca_cert_pem, "root ca certificate"))
    secret = int.from_bytes(secrets.token_bytes(_SECRET_BYTES), "big")
    return "-".join(
        (PREFIX, VERSION, _to_base36(int(digest, 16), DIGEST_LEN), _to_base36(secret, SECRET_LEN))
    )


def parse_join_token(token: str) -> JoinToken:
    """Split a token into its digest and secret.

    Raises:
        InvalidArgument: the token is malformed; the message says which part is wrong and never
            repeats the token.
    """
    parts = token.strip().split("-")
    if len(parts) != 4 or parts[0] != PREFIX:
        raise errors.InvalidArgument(
            "invalid join token: expected the form SWMTKN-1-<digest>-<secret>"
        )
    _, version, digest, secret = parts
    if version != VERSION:
        raise errors.InvalidArgument(f"invalid join token: unsupported version {version!r}")
    if len(digest) != DIGEST_LEN or not _is_base36(digest):
        raise errors.InvalidArgument(
            f"invalid join token: the root ca digest must be {DIGEST_LEN} base36 characters"
        )
    if len(secret) != SECRET_LEN or not _is_base36(secret):
        raise errors.InvalidArgument(
            f"invalid join token: the secret must be {SECRET_LEN} base36 characters"
        )
    value = int(digest, 36)
    if value.bit_length() > _HEX_DIGEST_LEN * 4:
        raise errors.InvalidArgument("invalid join token: the root ca digest is out of range")
    return JoinToken(digest=f"{value:0{_HEX_DIGEST_LEN}x}", secret=secret)


def _is_base36(text: str) -> bool:
    return all(c in _ALPHABET for c in text)


def tokens_equal(a: str, b: str) -> bool:
    """Constant-time comparison of two tokens (or secrets); empty never matches."""
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode(), b.encode())


__all__ = [
    "DIGEST_LEN",
    "SECRET_LEN",
    "JoinToken",
    "new_join_token",
    "parse_join_token",
    "tokens_equal",
]
