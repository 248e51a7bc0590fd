"""The bookkeeping of one log subscription over its nodes: who must answer, by when, and gaps.

Manager layer, pure (no I/O, no clock of its own: callers pass `now`, monotonic seconds), driven
by `swarmd.manager.logbroker.broker.LogBroker`. This is where "logs never hang" is decided
(users.md 4.8; moby/moby#37336, #41733): every node that holds selected tasks is either
answered for or named in a gap, and a subscription without `follow` is done once no node is
still pending.

A node is expected once the subscription was sent to it (`expect`); it must then be heard from
(any publish message: data, the empty first message, or close) within `deadline` seconds of the
last time it was heard, unless a delivery from it is still in flight (`busy`), because then the
wait is the client's, not the node's. `closed` marks a node done; `gap` names it as lost and
returns the text for the client exactly once. With `follow`, silence is normal (no deadline), a
lost node may be expected again after it reconnects, and the subscription is never done.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class NodeProgress(enum.Enum):
    """Where one node stands in a subscription."""

    PENDING = "pending"  # sent, not finished
    CLOSED = "closed"  # published its last message
    GAPPED = "gapped"  # lost; the client was told


@dataclass(slots=True)
class _Node:
    label: str
    progress: NodeProgress
    heard_at: float
    busy: int = 0
    published: bool = False


def node_label(node_id: str, hostname: str) -> str:
    """How a gap names a node: `hostname (id)`, or the id alone."""
    return f"{hostname} ({node_id})" if hostname and hostname != node_id else node_id


def gap_text(label: str, reason: str) -> str:
    """The one wording of a gap the client shows as a warning."""
    return f"no logs from node {label}: {reason}"


class SubscriptionState:
    """Progress of one subscription per node; see the module docstring."""

    def __init__(self, *, follow: bool, deadline: float) -> None:
        self.follow = follow
        self.deadline = deadline
        self._nodes: dict[str, _Node] = {}

    def expect(self, node_id: str, label: str, now: float) -> None:
        """The subscription was sent to the node: it is pending from now on."""
        self._nodes[node_id] = _Node(label=label, progress=NodeProgress.PENDING, heard_at=now)

    def progress(self, node_id: str) -> NodeProgress | None:
        """The node's progress, None when it was never expected."""
        node = self._nodes.get(node_id)
        return None if node is None else node.progress

    def accepts(self, node_id: str) -> bool:
        """Whether messages from the node still belong in the client's stream."""
        return self.progress(node_id) is NodeProgress.PENDING

    def heard(self, node_id: str, now: float, *, data: bool = False) -> None:
        """The node sent something (`data`: log lines); its deadline starts again."""
        node = self._nodes.get(node_id)
        if node is not None and node.progress is NodeProgress.PENDING:
            node.heard_at = now
            node.published = node.published or data

    def busy(self, node_id: str, delta: int, now: float) -> None:
        """A delivery from the node starts (+1) or ends (-1); no deadline runs meanwhile."""
        node = self._nodes.get(node_id)
        if node is not None:
            node.busy = max(0, node.busy + delta)
            node.heard_at = now

    def closed(self, node_id: str) -> None:
        """The node published its close: it has sent everything."""
        node = self._nodes.get(node_id)
        if node is not None and node.progress is NodeProgress.PENDING:
            node.progress = NodeProgress.CLOSED

    def gap(self, node_id: str, label: str, reason: str) -> str | None:
        """Mark the node lost; the gap text, or None when it had already finished or gapped."""
        node = self._nodes.get(node_id)
        if node is None:
            self._nodes[node_id] = _Node(label=label, progress=NodeProgress.GAPPED, heard_at=0.0)
            return gap_text(label, reason)
        if node.progress is not NodeProgress.PENDING:
            return None
        node.progress = NodeProgress.GAPPED
        return gap_text(node.label, reason)

    def has_published(self, node_id: str) -> bool:
        """Whether the node sent log lines for this subscription."""
        node = self._nodes.get(node_id)
        return node is not None and node.published

    def expired(self, now: float) -> list[str]:
        """Gap texts for pending nodes silent past the deadline (never with follow)."""
        if self.follow:
            return []
        out = []
        for node in self._nodes.values():
            if (
                node.progress is NodeProgress.PENDING
                and node.busy == 0
                and now - node.heard_at >= self.deadline
            ):
                node.progress = NodeProgress.GAPPED
                out.append(gap_text(node.label, f"no answer within {self.deadline:g}s"))
        return out

    def next_deadline(self) -> float | None:
        """When the earliest pending node's deadline passes; None when none runs."""
        if self.follow:
            return None
        times = [
            n.heard_at + self.deadline
            for n in self._nodes.values()
            if n.progress is NodeProgress.PENDING and n.busy == 0
        ]
        return min(times) if times else None

    def abort(self) -> None:
        """End the subscription now: nothing more is accepted, and it is done."""
        self.follow = False
        for node in self._nodes.values():
            if node.progress is NodeProgress.PENDING:
                node.progress = NodeProgress.GAPPED

    @property
    def done(self) -> bool:
        """Without follow: no node is pending any more."""
        if self.follow:
            return False
        return all(n.progress is not NodeProgress.PENDING for n in self._nodes.values())


__all__ = ["NodeProgress", "SubscriptionState", "gap_text", "node_label"]
