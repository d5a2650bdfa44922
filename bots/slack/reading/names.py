"""People's display names in Slack, as the log and the model call them: users.info, cached and bounded.

Events are acknowledged after their listener returns and a listener asks for the writer's name, so a lookup
never takes longer than :data:`USER_LOOKUP_TIMEOUT_S`, and a failure costs the name only (the id stands in).
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bots.router.bounded import BoundedCache
from bots.seam.messages import Author
from bots.slack.errors import slack_error

log = logging.getLogger(__name__)

USER_LOOKUP_TIMEOUT_S = 1.5
DISPLAY_NAME_TTL_S = 3600.0  # people rename themselves; an hour-old name is good enough for a transcript
DISPLAY_NAMES_MAX = 5000


class DisplayNames:
    """users.info at most once an hour per user, for at most :data:`DISPLAY_NAMES_MAX` people."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self.cache: BoundedCache[str, str] = BoundedCache(max_entries=DISPLAY_NAMES_MAX, ttl_s=DISPLAY_NAME_TTL_S)

    async def named(self, user: Author) -> Author:
        """The clicker with the display name the log uses (users.info, cached), not the account name."""
        return Author(user.id, await self.display_name(user.id))

    async def display_name(self, user_id: str) -> str:
        """users.info, at most once an hour per user; the id itself when Slack cannot say or cannot be reached."""
        name = self.cache.get(user_id)
        if name is not None:
            return name
        try:
            # Events are acknowledged after the listener returns: never let a slow lookup hold the ack.
            response = await asyncio.wait_for(self._client.users_info(user=user_id), USER_LOOKUP_TIMEOUT_S)
        except SlackApiError as exc:
            log.info("users.info failed for %s: %s", user_id, slack_error(exc))
            return user_id
        except (SlackClientError, aiohttp.ClientError) as exc:
            # A network error must cost the name only, never the delivery or the click waiting on it.
            log.info("users.info for %s failed (%s); using the id for now", user_id, type(exc).__name__)
            return user_id
        except TimeoutError:
            log.info("users.info for %s took over %.0fs; using the id for now", user_id, USER_LOOKUP_TIMEOUT_S)
            return user_id
        user = response.get("user") or {}
        profile = user.get("profile") or {}
        name = str(profile.get("display_name") or profile.get("real_name") or user.get("name") or user_id)
        self.cache.put(user_id, name)
        return name
