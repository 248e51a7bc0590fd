"""Flag value parsers: durations, sizes, CPUs, ports, mounts, references, scale pairs."""

from __future__ import annotations

import pytest
from google.protobuf import duration_pb2
from hypothesis import given
from hypothesis import strategies as st

from swarmctl import flags
from swarmd.api import types_pb2

_Port = types_pb2.PortConfig
_Mount = types_pb2.Mount


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("0", 0),
        ("10s", 10 * 10**9),
        ("500ms", 500 * 10**6),
        ("1m30s", 90 * 10**9),
        ("1.5h", 5400 * 10**9),
        ("2h45m", (2 * 3600 + 45 * 60) * 10**9),
        ("100us", 100_000),
        ("7ns", 7),
        (".5s", 5 * 10**8),
    ],
)
def test_parse_duration_accepts_go_durations(text, nanos) -> None:
    assert flags.parse_duration_nanos(text) == nanos
    d = flags.parse_duration(text)
    assert d.seconds * 10**9 + d.nanos == nanos


@pytest.mark.parametrize("text", ["", "10", "10x", "s", "1m30", "-5s", "1 s", "ten seconds"])
def test_parse_duration_rejects_with_the_value_and_the_rule(text) -> None:
    with pytest.raises(flags.FlagError, match="invalid duration") as err:
        flags.parse_duration_nanos(text)
    assert repr(text) in str(err.value)


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (0, "0s"),
        (90 * 10**9, "1m30s"),
        (500 * 10**6, "500ms"),
        (1_500_000_000, "1.5s"),
        (3600 * 10**9, "1h0m0s"),
        (2_000, "2us"),
        (5, "5ns"),
    ],
)
def test_format_duration_is_go_duration_string(nanos, text) -> None:
    assert flags.format_duration(nanos) == text
    assert (
        flags.format_duration(duration_pb2.Duration(seconds=nanos // 10**9, nanos=nanos % 10**9))
        == text
    )


@given(st.integers(min_value=0, max_value=10**6 * 3600 * 10**9))
def test_format_then_parse_round_trips(nanos) -> None:
    assert flags.parse_duration_nanos(flags.format_duration(nanos)) == nanos


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1024", 1024),
        ("64m", 64 * 2**20),
        ("64MiB", 64 * 2**20),
        ("64MB", 64 * 2**20),
        ("1g", 2**30),
        ("1.5G", 3 * 2**29),
        ("512k", 512 * 1024),
        ("10b", 10),
    ],
)
def test_parse_memory_uses_binary_units(text, size) -> None:
    assert flags.parse_memory(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1m", "1x", "1e9"])
def test_parse_memory_rejects(text) -> None:
    with pytest.raises(flags.FlagError, match="invalid memory size"):
        flags.parse_memory(text)


def test_parse_cpus() -> None:
    assert flags.parse_cpus("0.5") == 500_000_000
    assert flags.parse_cpus("2") == 2 * 10**9
    assert flags.format_cpus(250_000_000) == "0.25"
    for bad in ("0", "-1", "half", "nan", "inf"):
        with pytest.raises(flags.FlagError, match="invalid cpu count"):
            flags.parse_cpus(bad)


def test_parse_key_value_and_env() -> None:
    assert flags.parse_key_value("a=b=c") == ("a", "b=c")
    assert flags.parse_key_value("flag") == ("flag", "")
    assert flags.parse_env("A=") == "A="
    with pytest.raises(flags.FlagError, match="invalid key=value"):
        flags.parse_key_value("=v")
    for bad in ("A", "=1", "A B=1"):
        with pytest.raises(flags.FlagError, match="invalid environment variable"):
            flags.parse_env(bad)


@pytest.mark.parametrize(
    ("text", "port"),
    [
        ("80", _Port(target_port=80)),
        ("8080:80", _Port(target_port=80, published_port=8080)),
        ("8080:80/udp", _Port(target_port=80, published_port=8080, protocol=_Port.PROTOCOL_UDP)),
        ("53/sctp", _Port(target_port=53, protocol=_Port.PROTOCOL_SCTP)),
        (
            "mode=host,target=80,published=8080,protocol=tcp,name=web",
            _Port(
                target_port=80,
                published_port=8080,
                publish_mode=_Port.PUBLISH_MODE_HOST,
                name="web",
            ),
        ),
    ],
)
def test_parse_port_short_and_long_syntax(text, port) -> None:
    assert flags.parse_port(text) == port


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "must be 1-65535"),
        ("70000:80", "invalid port '70000'"),
        ("80/icmp", "invalid protocol 'icmp'"),
        ("a:b", "invalid port 'b'"),
        ("mode=bridge,target=80", "invalid mode 'bridge'"),
        ("published=80", "target= is required"),
        ("target=80,colour=red", "unknown field 'colour'"),
    ],
)
def test_parse_port_errors(text, message) -> None:
    with pytest.raises(flags.FlagError, match=message):
        flags.parse_port(text)


def test_parse_mount() -> None:
    assert flags.parse_mount("type=bind,source=/a,target=/b,readonly") == _Mount(
        type=_Mount.MOUNT_TYPE_BIND, source="/a", target="/b", readonly=True
    )
    assert flags.parse_mount("src=data,dst=/data,ro=false") == _Mount(
        type=_Mount.MOUNT_TYPE_VOLUME, source="data", target="/data"
    )
    tmpfs = flags.parse_mount("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1777")
    assert (tmpfs.tmpfs_size_bytes, tmpfs.tmpfs_mode) == (64 * 2**20, 0o1777)
    vol = flags.parse_mount("target=/v,volume-driver=local,volume-label=a=b")
    assert (vol.volume_driver, dict(vol.volume_labels)) == ("local", {"a": "b"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("type=nfs,target=/x", "invalid type 'nfs'"),
        ("type=bind,source=/a", "target= is required"),
        ("target=/x,readonly=maybe", "invalid readonly 'maybe'"),
        ("target=/x,,", "empty field"),
        ("target=/x,size=1", "unknown field 'size'"),
        ("target=/x,tmpfs-mode=999", "must be octal"),
    ],
)
def test_parse_mount_errors(text, message) -> None:
    with pytest.raises(flags.FlagError, match=message):
        flags.parse_mount(text)


def test_parse_file_reference() -> None:
    assert flags.parse_file_reference("pw") == (
        "pw",
        types_pb2.FileTarget(name="pw", uid="0", gid="0", mode=0o444),
    )
    name, target = flags.parse_file_reference("source=pw,target=db.pass,uid=1000,mode=0400")
    assert (name, target.name, target.uid, target.gid, target.mode) == (
        "pw",
        "db.pass",
        "1000",
        "0",
        0o400,
    )
    with pytest.raises(flags.FlagError, match="source= is required"):
        flags.parse_file_reference("target=x")
    with pytest.raises(flags.FlagError, match="unknown field 'owner'"):
        flags.parse_file_reference("source=pw,owner=me")


def test_parse_placement_pref_and_scale() -> None:
    pref = flags.parse_placement_pref("spread=node.labels.zone")
    assert pref.spread.spread_descriptor == "node.labels.zone"
    with pytest.raises(flags.FlagError, match="must be spread=<label>"):
        flags.parse_placement_pref("pack=node.labels.zone")
    assert flags.parse_scale("web=5") == ("web", 5)
    assert flags.parse_scale("a=b=0") == ("a=b", 0)
    with pytest.raises(flags.FlagError, match="invalid replica count '-1'"):
        flags.parse_scale("web=-1")
    with pytest.raises(flags.FlagError, match="must be SERVICE=REPLICAS"):
        flags.parse_scale("web")


def test_choice_is_case_insensitive_and_lists_the_choices() -> None:
    convert = flags.choice("color", {"red": 1, "blue": 2})
    assert convert("RED") == 1
    with pytest.raises(flags.FlagError, match="invalid color 'green': must be one of red, blue"):
        convert("green")
