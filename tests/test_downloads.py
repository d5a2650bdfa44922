"""The download policy: which URLs are fetched, which addresses are connected to, how redirects are followed."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from bots.files.downloads import (
    BlockedAddress,
    CheckedResolver,
    Downloader,
    FetchPolicy,
    FileHosts,
    Refused,
    is_public_address,
)
from bots.seam.messages import FileSource
from tests.fakes.server import LoopbackServer

POLICY = FetchPolicy.for_platforms(slack_api_url="http://127.0.0.1:8900/api/", discord_api_base=None)
TOKEN = {"Authorization": "Bearer xoxb-secret"}


@pytest.mark.parametrize(
    ("url", "platform", "allowed"),
    [
        ("https://files.slack.com/files-pri/T1-F1/a.png", "slack", True),
        ("https://FILES.SLACK.COM/files-pri/T1-F1/a.png", "slack", True),
        ("http://files.slack.com/files-pri/T1-F1/a.png", "slack", False),  # https only
        ("https://files.slack.com:8443/a.png", "slack", False),  # the default port only
        ("https://files.slack.com.evil.example/a.png", "slack", False),
        ("https://files.slack.com@evil.example/a.png", "slack", False),  # the host is evil.example
        ("https://evil.example/files.slack.com/a.png", "slack", False),
        ("https://docs.google.com/document/d/1", "slack", False),  # a Slack external file
        ("ftp://files.slack.com/a.png", "slack", False),
        ("file:///etc/passwd", "slack", False),
        ("not a url", "slack", False),
        ("https://cdn.discordapp.com/attachments/1/2/a.png", "discord", True),
        ("https://media.discordapp.net/attachments/1/2/a.png", "discord", True),
        ("https://cdn.discordapp.com/attachments/1/2/a.png", "slack", False),  # another platform's host
        ("https://files.slack.com/a.png", "discord", False),
        ("https://files.slack.com/a.png", "", False),  # a source that names no platform
        ("https://169.254.169.254/latest/meta-data/", "slack", False),
        ("https://[::1]/a.png", "discord", False),
    ],
)
def test_files_come_over_https_from_their_own_platforms_file_hosts_only(url: str, platform: str, allowed: bool) -> None:
    assert POLICY.allows(url, platform=platform) is allowed


def test_the_configured_api_host_is_allowed_as_configured_and_nothing_near_it() -> None:
    assert POLICY.allows("http://127.0.0.1:8900/files-pri/T1-F1/a.png", platform="slack")  # http, loopback: chosen
    assert not POLICY.allows("http://127.0.0.1:8901/a.png", platform="slack")  # another port
    assert not POLICY.allows("https://127.0.0.1:8900/a.png", platform="slack")  # another scheme
    assert not POLICY.allows("http://127.0.0.2:8900/a.png", platform="slack")  # another address
    assert not POLICY.allows("http://127.0.0.1:8900/a.png", platform="discord")  # Slack's host, not Discord's
    assert POLICY.exempt() == {("127.0.0.1", 8900)}
    assert FetchPolicy.for_platforms().exempt() == frozenset()


def test_a_file_off_its_hosts_is_described_not_fetched_and_a_local_console_file_is_not_a_url() -> None:
    gdrive = FileSource("https://docs.google.com/document/d/1", TOKEN, platform="slack")
    assert POLICY.why_not(gdrive) == "it is not stored on Slack's file servers, so it was not downloaded"
    assert POLICY.why_not(FileSource("https://files.slack.com/a", TOKEN, platform="slack")) is None
    assert POLICY.why_not(FileSource("", local_path="/tmp/notes.txt")) is None


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.0.0.2",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # link-local: the cloud metadata service
        "100.64.0.1",  # shared address space (carrier-grade NAT)
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",  # multicast
        "::1",
        "::",
        "fe80::1",  # link-local
        "fe80::1%eth0",
        "fc00::1",  # unique local
        "fd00:ec2::254",  # the cloud metadata service over IPv6
        "ff02::1",  # multicast
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:169.254.169.254",
        "::127.0.0.1",  # IPv4-compatible
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "files.slack.com",  # not an address at all
    ],
)
def test_loopback_private_link_local_and_embedded_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "3.5.140.2", "2606:4700::1", "::ffff:8.8.8.8"])
def test_globally_routed_addresses_are_public(address: str) -> None:
    assert is_public_address(address)


class StubDNS(AbstractResolver):
    """aiohttp's resolver seam with fixed answers: name -> addresses."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            {"hostname": host, "host": a, "port": port, "family": family, "proto": 0, "flags": 0}
            for a in self.answers[host]
        ]

    async def close(self) -> None:
        pass


async def test_a_name_is_refused_when_any_address_it_resolves_to_is_not_public_unless_it_is_configured() -> None:
    dns = StubDNS({"files.slack.com": ["3.5.140.2", "10.0.0.7"], "cdn.discordapp.com": ["162.159.129.233"]})
    checked = CheckedResolver(exempt=frozenset({("files.slack.com", 8080)}), inner=dns)
    with pytest.raises(BlockedAddress):
        await checked.resolve("files.slack.com", 443)  # one private answer among public ones is enough
    assert [a["host"] for a in await checked.resolve("cdn.discordapp.com", 443)] == ["162.159.129.233"]
    assert len(await checked.resolve("files.slack.com", 8080)) == 2  # the configured host: the operator's choice


async def test_a_file_host_resolving_to_loopback_is_never_connected_to() -> None:
    """The check is in the connector's resolver: what was checked is what would be connected to."""
    dns = StubDNS({"files.example": ["127.0.0.1"]})
    policy = FetchPolicy({"slack": FileHosts("Slack's file servers", frozenset({"files.example"}))})
    async with Downloader(policy=policy, max_bytes=1000, timeout_s=5, resolver=dns) as files:
        with pytest.raises(Refused, match="its host is not a public address"):
            await files.download(FileSource("https://files.example/a.txt", TOKEN, platform="slack"))
    assert dns.asked == ["files.example"]


class Redirecting:
    """A configured file host whose every file redirects to the next one, recording each request's headers."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []  # (path, Authorization)
        self.server = LoopbackServer()

    async def serve(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.path, request.headers.get("Authorization")))
        n = int(request.match_info["n"])
        await asyncio.sleep(float(request.query.get("hop_s", "0")))  # a slow host, each hop within the limit
        if n < int(request.query.get("stop", "99")):
            raise web.HTTPFound(f"/f/{n + 1}?{request.query_string}")
        return web.Response(body=b"the file")


@pytest.fixture
async def redirecting() -> AsyncIterator[Redirecting]:
    host = Redirecting()
    app = web.Application()
    app.router.add_get("/f/{n}", host.serve)
    await host.server.start(app)
    yield host
    await host.server.stop()


async def test_redirects_on_an_allowed_host_are_followed_without_the_token_up_to_the_hop_limit(
    redirecting: Redirecting,
) -> None:
    base = f"http://localhost:{redirecting.server.port}"  # a name, resolved for real: the exemption holds
    policy = FetchPolicy.for_platforms(slack_api_url=f"{base}/api/")
    async with Downloader(policy=policy, max_bytes=1000, timeout_s=5) as files:
        assert await files.download(FileSource(f"{base}/f/0?stop=2", TOKEN, platform="slack")) == b"the file"
        with pytest.raises(Refused, match="redirected more than 3 times"):
            await files.download(FileSource(f"{base}/f/0", TOKEN, platform="slack"))
    assert redirecting.seen[:3] == [("/f/0", "Bearer xoxb-secret"), ("/f/1", None), ("/f/2", None)]
    assert [path for path, _ in redirecting.seen[3:]] == ["/f/0", "/f/1", "/f/2", "/f/3"]  # 1 request + 3 hops


async def test_the_time_limit_is_for_the_whole_file_redirects_included(redirecting: Redirecting) -> None:
    base = f"http://127.0.0.1:{redirecting.server.port}"
    policy = FetchPolicy.for_platforms(slack_api_url=f"{base}/api/")
    async with Downloader(policy=policy, max_bytes=1000, timeout_s=0.5) as files:
        with pytest.raises(Refused, match=r"the download timed out after 0.5 s"):
            await files.download(FileSource(f"{base}/f/0?stop=3&hop_s=0.2", TOKEN, platform="slack"))
    assert len(redirecting.seen) == 3  # each hop took 0.2 s, under the limit; together they did not fit
