"""Unit tests of controlapi are pure; the package import still needs a store module."""

from tests.component.controlapi import fakestore

fakestore.install()  # no-op once swarmd.manager.store is importable
