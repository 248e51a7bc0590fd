"""images.py: an image seen present is trusted for ttl seconds, then looked at again."""

from __future__ import annotations

from swarmd.dockerexec.images import PresentImages
from swarmd.testing.fake_clock import FakeClock


async def test_an_image_is_trusted_until_its_ttl_runs_out():
    clock = FakeClock()
    images = PresentImages(ttl=10.0, clock=clock)
    assert "app:1" not in images
    images.seen("app:1")
    assert "app:1" in images
    await clock.advance(9.9)
    assert "app:1" in images
    await clock.advance(0.2)
    assert "app:1" not in images


async def test_seeing_an_image_again_extends_it_and_forget_drops_it():
    clock = FakeClock()
    images = PresentImages(ttl=10.0, clock=clock)
    images.seen("app:1")
    await clock.advance(8)
    images.seen("app:1")
    await clock.advance(8)
    assert "app:1" in images
    images.forget("app:1")
    assert "app:1" not in images
    images.forget("never-seen")  # no error


def test_a_zero_ttl_trusts_nothing():
    images = PresentImages(ttl=0.0)
    images.seen("app:1")
    assert "app:1" not in images
