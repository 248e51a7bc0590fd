"""Node credentials on disk: modes, round trip, refusals."""

from __future__ import annotations

import stat

import pytest

from swarmd import errors
from swarmd.ca import bootstrap, certstore


@pytest.fixture(scope="module")
def boot() -> bootstrap.ClusterBootstrap:
    return bootstrap.init_cluster_ca("host-1", ["192.168.1.5:4242"])


def test_save_load_round_trip_and_modes(boot, tmp_path):
    certstore.save(tmp_path, boot.credentials)
    d = certstore.certificates_dir(tmp_path)
    assert stat.S_IMODE((d / "swarm-node.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((d / "swarm-node.crt").stat().st_mode) == 0o644
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert certstore.load(tmp_path) == boot.credentials
    assert not [p for p in d.iterdir() if p.name.startswith(".")]  # no temp files left


def test_load_without_files_is_none(tmp_path):
    assert certstore.load(tmp_path) is None


def test_load_with_missing_file_is_failed_precondition(boot, tmp_path):
    certstore.save(tmp_path, boot.credentials)
    (certstore.certificates_dir(tmp_path) / "swarm-node.crt").unlink()
    with pytest.raises(errors.FailedPrecondition, match=r"missing swarm-node\.crt"):
        certstore.load(tmp_path)


def test_load_refuses_key_of_another_certificate(boot, tmp_path):
    other = bootstrap.init_cluster_ca("host-2")
    certstore.save(tmp_path, boot.credentials)
    (certstore.certificates_dir(tmp_path) / "swarm-node.key").write_bytes(other.credentials.key_pem)
    with pytest.raises(errors.InvalidArgument, match="does not match"):
        certstore.load(tmp_path)


def test_credentials_parse_identity_and_hide_key(boot):
    creds = boot.credentials
    assert creds.cluster_id == boot.cluster_id
    assert creds.role_name == "swarm-manager"
    assert creds.is_manager
    assert creds.not_after > creds.not_before
    assert b"PRIVATE" not in repr(creds).encode()
    assert "key_pem" not in repr(creds)
