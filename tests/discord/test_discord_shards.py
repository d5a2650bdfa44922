"""Discord shards across workers: one worker holds the gateway, the other answers through REST, and takes over."""

from __future__ import annotations

from contextlib import AsyncExitStack

from storage.leases import shard_resource
from storage.postgres.db import open_postgres
from storage.postgres.leases import PostgresLeases
from tests.discord.conftest import DiscordBotFactory
from tests.fakes.discord import FakeDiscord
from tests.fakes.waiting import wait_until

ON_POSTGRES = {"worker_poll_s": 0.05, "worker_lease_s": 300.0}


async def test_one_worker_holds_the_shard_the_other_answers_through_rest_and_takes_the_shard_over(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, postgres_url: str
) -> None:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(discord_bot(database_url=postgres_url, **ON_POSTGRES))
        b = await stack.enter_async_context(discord_bot(database_url=postgres_url, **ON_POSTGRES))
        assert a.adapter.shards.shard == 0 and b.adapter.shards.shard is None
        assert fake_discord.identified == 1 and fake_discord.identified_shards == [[0, 1]]
        assert await b.adapter.is_connected()  # logged in to REST: ready to answer what it owns

        message = await fake_discord.user_says("hello from a thread", mention_bot=True)
        await wait_until(lambda: len(fake_discord.texts_in(message["id"])) == 1, timeout=20, what="the first answer")

        await a.adapter.stop()  # a deploy: worker A leaves; its shard's lease goes back at once
        await a.router.close()
        await wait_until(lambda: fake_discord.identified == 2, timeout=10, what="B connecting the shard")
        assert b.adapter.shards.shard == 0 and fake_discord.identified_shards[-1] == [0, 1]
        db = await open_postgres(postgres_url)
        try:
            holder = await PostgresLeases(db).holder_of(resource=shard_resource(0))
        finally:
            await db.close()
        assert holder == b.router.ownership.worker_id

        await fake_discord.user_says("still there?", channel_id=message["id"])
        # B's gateway received it; A's session left with A, so the thread is orphaned: the usual card.
        await wait_until(lambda: len(fake_discord.cards_in(message["id"])) == 1, timeout=10, what="B's card")
