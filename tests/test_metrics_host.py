"""/metrics, /healthz and /readyz answer anyone who can connect, so they listen on 127.0.0.1 unless METRICS_HOST
says otherwise; a host that is not this machine's is refused at start-up with the variable named."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from bots.config import ConfigError, load_settings
from bots.operator.health import Health, serve_health


@pytest.fixture
def outside_address() -> Iterator[str]:
    """An address of this machine other than loopback: the one its route to a documentation address leaves from.

    A UDP connect only picks the route; no packet is sent.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))
        except OSError:
            pytest.skip("this machine has no network interface besides loopback")
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("this machine has no network interface besides loopback")
    yield address


async def answers(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=5)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def test_health_and_metrics_listen_on_loopback_only_by_default(outside_address: str) -> None:
    settings = load_settings(_env_file=None)
    assert settings.metrics_host == "127.0.0.1"
    async with serve_health(Health(), port=0, host=settings.metrics_host) as port:
        assert port is not None
        assert await answers("127.0.0.1", port)
        assert not await answers(outside_address, port)


async def test_metrics_host_0000_serves_them_on_every_interface(outside_address: str) -> None:
    settings = load_settings(_env_file=None, metrics_host="0.0.0.0")
    async with serve_health(Health(), port=0, host=settings.metrics_host) as port:
        assert port is not None
        assert await answers(outside_address, port) and await answers("127.0.0.1", port)


async def test_a_metrics_host_that_is_not_this_machines_names_the_variable() -> None:
    with pytest.raises(ConfigError) as refused:
        async with serve_health(Health(), port=0, host="203.0.113.7"):
            pass
    assert "METRICS_HOST=203.0.113.7 cannot be served" in str(refused.value)
    assert "METRICS_HOST to an address of this machine" in str(refused.value)
