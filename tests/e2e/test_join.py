"""Other hosts join with a token over mutual TLS and show in `node ls` with role and status."""

from __future__ import annotations

import json
import os
import stat

from tests.e2e.harness import wait_for


def _tokens(mgr) -> dict[str, str]:
    cluster = mgr.ctl("cluster", "inspect", "default").json()
    return {k.lower(): v for k, v in cluster["JoinTokens"].items()}


def _nodes(mgr) -> dict[str, dict[str, str]]:
    r = mgr.ctl("node", "ls", "--format", "json")
    assert r.rc == 0, r.err
    return {n["Hostname"]: n for n in r.json()}


def test_worker_and_manager_join_and_show_in_node_ls(swarmd_factory) -> None:
    mgr = swarmd_factory("mgr").start()
    tokens = _tokens(mgr)
    worker = swarmd_factory("wrk", join_addr=mgr.join_api, join_token=tokens["worker"]).start()
    second = swarmd_factory("mgr2", join_addr=mgr.join_api, join_token=tokens["manager"]).start()

    nodes = wait_for(
        lambda: (
            (n := _nodes(mgr))
            and n.get("wrk", {}).get("Status") == "READY"
            and n.get("mgr2", {}).get("Status") == "READY"
            and n
        ),
        timeout=30,
        what="joined nodes READY",
    )
    assert nodes["wrk"]["Role"] == "worker"
    assert nodes["mgr2"]["Role"] == "manager"
    assert nodes["mgr"]["Role"] == "manager"
    assert nodes["mgr"]["Status"] == "READY"
    # The joined node's private key is readable by root only.
    key = worker.state_dir / "certificates" / "swarm-node.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert second.proc is not None
    assert second.proc.poll() is None


def test_killed_worker_goes_down_and_comes_back(swarmd_factory) -> None:
    mgr = swarmd_factory("mgr").start()
    assert mgr.ctl("cluster", "update", "--heartbeat-period", "1s").rc == 0
    token = _tokens(mgr)["worker"]
    worker = swarmd_factory("wrk", join_addr=mgr.join_api, join_token=token).start()
    wait_for(
        lambda: _nodes(mgr).get("wrk", {}).get("Status") == "READY", timeout=30, what="worker READY"
    )
    worker.kill()
    wait_for(lambda: _nodes(mgr)["wrk"]["Status"] == "DOWN", timeout=15, what="worker DOWN")
    # Restarted on the same state dir it reuses its certificate and identity: no second node.
    worker.join_addr = ""
    worker.start(wait=False)
    wait_for(lambda: _nodes(mgr)["wrk"]["Status"] == "READY", timeout=30, what="worker READY again")
    assert len(_nodes(mgr)) == 2


def test_join_with_bad_token_fails_clearly(swarmd_factory) -> None:
    mgr = swarmd_factory("mgr").start()
    good = _tokens(mgr)["worker"]
    # Right CA digest, wrong secret: the manager refuses it.
    bad_secret = good[:-5] + ("00000" if not good.endswith("00000") else "11111")
    node = swarmd_factory("bad", join_addr=mgr.join_api, join_token=bad_secret).start(wait=False)
    assert node.proc is not None
    rc = node.proc.wait(30)
    assert rc != 0
    assert "invalid join token" in node.logs()
    assert "Traceback" not in node.logs()
    # Another cluster's digest: the joiner refuses before sending its CSR.
    other = "SWMTKN-1-" + "1" * 50 + "-" + good.rsplit("-", 1)[1]
    node2 = swarmd_factory("bad2", join_addr=mgr.join_api, join_token=other).start(wait=False)
    assert node2.proc is not None
    assert node2.proc.wait(30) != 0
    assert "digest mismatch" in node2.logs()
    assert "bad" not in json.dumps(_nodes(mgr))
