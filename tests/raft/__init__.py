"""Tests of the pure raft core (swarmd.raft)."""
