"""Test doubles: fake clock, fake network, fake executor. Only tests import this package."""
