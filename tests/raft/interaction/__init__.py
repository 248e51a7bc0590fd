"""Data-driven transcript tests of the raft core."""
