"""Where attachments may be downloaded from, and the download itself: a platform's token goes only to its hosts.

A platform describes a file by a URL nobody vouches for. A Slack message's ``url_private`` can name any host
(Slack's external files live on Google Drive and the like, and a payload is only as honest as its sender) and
the Slack bot token would travel with it as Bearer; a fetched body ends up in the model's prompt. So every
download passes one policy (:class:`FetchPolicy`), built by the composition root from the configuration; the
adapters only describe files (URL, headers, platform) and never decide where the bot may connect.

- A URL is fetched only from its platform's file hosts, over https on the default port (``files.slack.com``;
  ``cdn.discordapp.com`` and ``media.discordapp.net``), or from the origin of the configured API URL
  (``SLACK_API_URL``, ``DISCORD_API_BASE``): the operator's own choice of host (a proxy, the tests' loopback
  fakes), which may be http and on a private address. A file anywhere else is named to the model, not fetched.
- A file host's name is resolved and every address it resolves to must be public: no loopback, private,
  link-local, shared, reserved or multicast address, nor an IPv6 form of one. The check is the connector's
  resolver (:class:`CheckedResolver`), so the connection goes to exactly the addresses that were checked and a
  DNS answer that changes between a check and a connect (rebinding) cannot slip past.
- Redirects are followed here, hop by hop, at most ``MAX_REDIRECTS``: each hop must pass the same policy, and
  only the first request carries the source's headers (the token), never a redirected one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from bots.seam.messages import FileSource

log = logging.getLogger(__name__)

SLACK_FILE_HOSTS = frozenset({"files.slack.com"})
DISCORD_FILE_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})
MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DOWNLOAD_CHUNK_BYTES = 64 * 1024
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # a.b.c.d through a NAT64 gateway


class Refused(Exception):
    """A file the bot will not use; the message is the short reason people and the model are told."""


class BlockedAddress(OSError):
    """A file host resolved to an address the bot does not connect to (raised inside aiohttp's connector)."""


def is_public_address(address: str) -> bool:
    """Whether ``address`` (an IP literal) is one the bot may connect to for a file: globally routed unicast.

    An IPv6 address that carries an IPv4 one (mapped, compatible, 6to4, NAT64) is judged by that IPv4 address
    too, so ``::ffff:127.0.0.1`` is as private as ``127.0.0.1``. Anything that does not parse is not public.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is None and (ip in _IPV4_COMPATIBLE or ip in _NAT64):
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
        if inner is not None and not is_public_address(str(inner)):
            return False
    return ip.is_global and not ip.is_multicast


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Origin:
    """Scheme, host and port: what a URL must match exactly to count as the configured API's host."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: URL | str | None) -> Origin | None:
        if url is None:
            return None
        try:
            parsed = url if isinstance(url, URL) else URL(url)
        except (ValueError, TypeError):
            return None
        if parsed.scheme not in ("http", "https") or not parsed.host or parsed.port is None:
            return None
        return cls(parsed.scheme, parsed.host.lower(), parsed.port)


@dataclass(frozen=True, slots=True)
class FileHosts:
    """Where one platform serves its files: its file host names (https only), and the configured API's origin."""

    label: str  # for people and the model: "Slack's file servers"
    names: frozenset[str]
    configured: Origin | None = None

    def allows(self, url: URL) -> bool:
        origin = Origin.of(url)
        if origin is None:
            return False
        if origin == self.configured:
            return True
        named = origin.host in self.names and not _is_ip_literal(origin.host)
        return named and origin.scheme == "https" and origin.port == 443


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """Which hosts each platform's files may be downloaded from; one for the process, from the configuration."""

    platforms: Mapping[str, FileHosts] = field(default_factory=dict)

    @classmethod
    def for_platforms(cls, *, slack_api_url: str | None = None, discord_api_base: str | None = None) -> FetchPolicy:
        """Slack's and Discord's own file hosts, plus the origins of the configured API URLs (None: none)."""
        return cls(
            {
                "slack": FileHosts("Slack's file servers", SLACK_FILE_HOSTS, Origin.of(slack_api_url)),
                "discord": FileHosts("Discord's CDN", DISCORD_FILE_HOSTS, Origin.of(discord_api_base)),
            }
        )

    def allows(self, url: URL | str, *, platform: str) -> bool:
        hosts = self.platforms.get(platform)
        try:
            parsed = url if isinstance(url, URL) else URL(url)
        except (ValueError, TypeError):
            return False
        return hosts is not None and hosts.allows(parsed)

    def why_not(self, source: FileSource) -> str | None:
        """None when ``source`` may be fetched; else the reason the model is told instead of the file."""
        if source.local_path is not None or self.allows(source.url, platform=source.platform):
            return None
        return f"it is not stored on {self.label(source.platform)}, so it was not downloaded"

    def label(self, platform: str) -> str:
        hosts = self.platforms.get(platform)
        return hosts.label if hosts is not None else "the platform's own file hosts"

    def exempt(self) -> frozenset[tuple[str, int]]:
        """The configured hosts (host, port): the operator's choice, which may be a private address."""
        return frozenset((h.configured.host, h.configured.port) for h in self.platforms.values() if h.configured)


class CheckedResolver(AbstractResolver):
    """aiohttp's resolver, refusing a name with any address that is not public (unless it is a configured host).

    aiohttp connects to the addresses its resolver returns, so what is checked here is what is connected to.
    IP literals never reach a resolver: :class:`FileHosts` admits none but a configured origin.
    """

    def __init__(self, *, exempt: frozenset[tuple[str, int]], inner: AbstractResolver | None = None) -> None:
        self._exempt = exempt
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        if (host.lower(), port) in self._exempt:
            return answers
        if not answers or not all(is_public_address(answer["host"]) for answer in answers):
            raise BlockedAddress(f"{host} resolves to an address that is not public")
        return answers

    async def close(self) -> None:
        await self._inner.close()


class Downloader:
    """One batch of downloads (a message's files) under a policy, a size cap and a time limit.

    ``async with Downloader(...) as files`` opens one HTTP session whose connector resolves through
    :class:`CheckedResolver`, ignores proxy settings from the environment, and keeps no cookies.
    """

    def __init__(
        self,
        *,
        policy: FetchPolicy,
        max_bytes: int,
        timeout_s: float,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.policy = policy
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._resolver = CheckedResolver(exempt=policy.exempt(), inner=resolver)
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Downloader:
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=self._resolver),
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._http is not None:
            await self._http.close()
        await self._resolver.close()

    def why_not(self, source: FileSource) -> str | None:
        """Why ``source`` will not be fetched at all (it is not on its platform's hosts), or None."""
        reason = self.policy.why_not(source)
        if reason is not None:
            log.info("not downloading a %s file from %s: not one of its file hosts", source.platform, _host(source))
        return reason

    async def download(self, source: FileSource, *, html_expected: bool = False) -> bytes:
        """The file's bytes, at most ``max_bytes`` of them, within the time limit; or :class:`Refused`.

        A web page where a file was expected is Slack's sign-in page (a token without ``files:read``): refused,
        never inlined as if it were the file.
        """
        if source.local_path is not None:
            return await asyncio.to_thread(_read_local, source.local_path, self._max_bytes)
        if self.policy.why_not(source) is not None:
            raise Refused(f"it is not stored on {self.policy.label(source.platform)}")
        try:
            async with asyncio.timeout(self._timeout_s):  # for the whole file, redirects included
                return await self._fetch(source, html_expected=html_expected)
        except TimeoutError:
            raise Refused(f"the download timed out after {self._timeout_s:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddress):
                log.warning("not downloading a %s file: %s", source.platform, exc.os_error)
                raise Refused("its host is not a public address") from None
            raise Refused(f"the download failed ({type(exc).__name__})") from None
        except aiohttp.ClientError as exc:
            raise Refused(f"the download failed ({type(exc).__name__})") from None

    async def _fetch(self, source: FileSource, *, html_expected: bool) -> bytes:
        assert self._http is not None, "use the Downloader as an async context manager"
        url, headers = URL(source.url), dict(source.headers)
        for _hop in range(MAX_REDIRECTS + 1):
            async with self._http.get(url, headers=headers, allow_redirects=False) as response:
                if response.status in REDIRECT_STATUSES:
                    url = self._next_hop(url, response.headers.get("Location"), platform=source.platform)
                    headers = {}  # the token went to the first host only
                    continue
                if response.status != 200:
                    raise Refused(f"the download failed (HTTP {response.status})")
                if response.content_type == "text/html" and not html_expected:
                    raise Refused("the download returned a sign-in page, not the file")
                return await self._body(response)
        raise Refused(f"the download was redirected more than {MAX_REDIRECTS} times")

    def _next_hop(self, url: URL, location: str | None, *, platform: str) -> URL:
        if not location:
            raise Refused("the download was redirected nowhere")
        try:
            target = url.join(URL(location))
        except (ValueError, TypeError):
            raise Refused("the download was redirected to a malformed address") from None
        if not self.policy.allows(target, platform=platform):
            log.warning("not following a %s file's redirect to %s: not one of its file hosts", platform, target.host)
            raise Refused(f"the download was redirected away from {self.policy.label(platform)}")
        return target

    async def _body(self, response: aiohttp.ClientResponse) -> bytes:
        if (response.content_length or 0) > self._max_bytes:
            raise Refused(too_large(self._max_bytes))
        data = bytearray()
        async for chunk in response.content.iter_chunked(DOWNLOAD_CHUNK_BYTES):
            data += chunk
            if len(data) > self._max_bytes:
                raise Refused(too_large(self._max_bytes))
        return bytes(data)


def too_large(max_bytes: int) -> str:
    return f"larger than the {max_bytes / 1_000_000:g} MB limit"


def _host(source: FileSource) -> str:
    try:
        return URL(source.url).host or "no host"
    except (ValueError, TypeError):
        return "a malformed address"


def _read_local(path: str, max_bytes: int) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise Refused(f"the file could not be opened ({exc.strerror or type(exc).__name__})") from None
    if len(data) > max_bytes:
        raise Refused(too_large(max_bytes))
    return data
