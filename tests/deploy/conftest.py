"""The built image, once per test session (building it takes minutes): see tests/deploy/image.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.deploy.image import REQUIRE_VARIABLE, BuiltImage, build_image, missing_tools


@pytest.fixture(scope="session")
def built_image() -> Iterator[BuiltImage]:
    missing = missing_tools()
    if missing:
        message = f"the image tests need {', '.join(missing)} (apt-get install podman debootstrap; run as root)"
        if os.environ.get(REQUIRE_VARIABLE) == "1":
            pytest.fail(f"{REQUIRE_VARIABLE}=1 but {message}")
        pytest.skip(message)
    image = build_image()
    print(
        f"\nimage {image.name}: base {image.base_seconds:.0f} s, build {image.build_seconds:.0f} s, "
        f"{image.size_bytes / 1e6:.0f} MB"
    )
    yield image
