"""State survives swarmd restarts, SIGTERM (clean) and SIGKILL (crash), as an operator sees it."""

from __future__ import annotations

import signal

import pytest

from tests.e2e.harness import wait_for


def _snapshot(node) -> dict[str, object]:
    services = node.ctl("service", "ls", "--format", "json")
    secrets = node.ctl("secret", "ls", "--format", "json")
    configs = node.ctl("config", "ls", "--format", "json")
    nodes = node.ctl("node", "ls", "--format", "json")
    cluster = node.ctl("cluster", "inspect", "default")
    for r in (services, secrets, configs, nodes, cluster):
        assert r.rc == 0, r.err
    return {
        "services": sorted((s["ID"], s["Name"]) for s in services.json()),
        "secrets": sorted((s["ID"], s["Name"]) for s in secrets.json()),
        "configs": sorted((c["ID"], c["Name"]) for c in configs.json()),
        "nodes": sorted(n["ID"] for n in nodes.json()),
        "cluster": cluster.json()["ID"],
        "tokens": cluster.json()["Spec"] and cluster.json().get("JoinTokens"),
    }


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_state_survives_restart(swarmd_factory, sig) -> None:
    node = swarmd_factory("mgr").start()
    assert (
        node.ctl("service", "create", "--name", "web", "--image", "busybox", "--replicas", "3").rc
        == 0
    )
    assert node.ctl("service", "create", "--name", "db", "--image", "busybox").rc == 0
    assert node.ctl("service", "update", "web", "--env-add", "A=1").rc == 0
    assert node.ctl("secret", "create", "pw", stdin="hunter2").rc == 0
    assert node.ctl("config", "create", "cfg", stdin="k=v").rc == 0
    assert node.ctl("cluster", "update", "--task-history", "7").rc == 0
    assert node.ctl("service", "rm", "db").rc == 0
    before = _snapshot(node)
    web_before = node.ctl("service", "inspect", "web").json()

    rc = node.stop(sig)
    if sig == signal.SIGTERM:
        assert rc == 0, node.logs()
    node.start()

    after = _snapshot(node)
    assert after == before
    web_after = node.ctl("service", "inspect", "web").json()
    assert web_after["Spec"] == web_before["Spec"]
    assert web_after["Meta"]["Version"] == web_before["Meta"]["Version"]
    assert "A=1" in web_after["Spec"]["Task"]["Container"]["Env"]
    cluster = node.ctl("cluster", "inspect", "default").json()
    assert str(cluster["Spec"]["Orchestration"]["TaskHistoryRetentionLimit"]) == "7"
    # The manager's own node comes back READY with the same id.
    wait_for(
        lambda: node.ctl("node", "ls", "--format", "json").json()[0]["Status"] == "READY",
        what="node READY after restart",
    )
    # Writes still work after recovery, and versions keep increasing.
    assert node.ctl("service", "scale", "web=5").rc == 0
    web_scaled = node.ctl("service", "inspect", "web").json()
    assert int(web_scaled["Meta"]["Version"]["Index"]) > int(web_after["Meta"]["Version"]["Index"])


def test_sigterm_exits_cleanly_and_removes_socket(swarmd_factory) -> None:
    node = swarmd_factory("mgr").start()
    # Its own agent's session is open: the stop closes it and records the node DISCONNECTED
    # while the raft member is still up, so a clean stop logs no warning.
    wait_for(
        lambda: node.ctl("node", "ls", "--format", "json").json()[0]["Status"] == "READY",
        what="node READY",
    )
    assert node.stop(signal.SIGTERM) == 0
    logs = node.logs(0)
    assert "Traceback" not in logs
    stop = logs.split("] stopping ", 1)
    assert len(stop) == 2, logs[-3000:]
    complaints = [ln for ln in stop[1].splitlines() if "[warning" in ln or "[error" in ln]
    assert complaints == [], complaints
