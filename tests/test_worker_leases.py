"""Leases with fencing tokens on a real Postgres: takeover after expiry, a stale holder refused, wake-ups."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from bots.workers.ownership import Claim, ThreadOwnership
from storage.leases import Fence, LeaseLost, SoleOwner, Wake, thread_resource
from storage.migrations import migrate
from storage.postgres.db import PostgresDatabase, open_postgres
from storage.postgres.leases import PostgresLeases, check_fence
from tests.fakes.waiting import wait_until

A, B = "worker-a", "worker-b"


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[PostgresDatabase]:
    db = await open_postgres(postgres_url)
    await migrate(db)
    try:
        yield db
    finally:
        await db.close()


async def expire(db: PostgresDatabase, resource: str) -> None:
    """Time passes for one lease (instead of sleeping through its TTL)."""
    await db.execute(
        "UPDATE leases SET expires_utc = clock_timestamp() - interval '1 second' WHERE resource = %s", (resource,)
    )


async def fenced_write(db: PostgresDatabase, fence: Fence) -> None:
    """What a store's ownership-dependent write does: check the fence, then write, in one transaction."""
    async with db.transaction() as connection:
        await check_fence(connection, fence)
        await connection.execute("CREATE TABLE IF NOT EXISTS writes (holder TEXT, token BIGINT)")
        await connection.execute("INSERT INTO writes VALUES (%s, %s)", (fence.holder, fence.token))


async def test_a_held_lease_is_refused_to_another_worker_until_it_expires_then_taken_with_a_higher_token(
    pg: PostgresDatabase,
) -> None:
    leases = PostgresLeases(pg)
    resource = thread_resource(7)
    first = await leases.acquire(resource=resource, holder=A, ttl_s=30)
    assert first is not None
    assert await leases.acquire(resource=resource, holder=B, ttl_s=30) is None
    assert await leases.holder_of(resource=resource) == A
    again = await leases.acquire(resource=resource, holder=A, ttl_s=30)
    assert again == first  # renewing one's own lease keeps its token

    await expire(pg, resource)
    assert await leases.holder_of(resource=resource) is None
    taken = await leases.acquire(resource=resource, holder=B, ttl_s=30)
    assert taken is not None and taken.token > first.token
    assert await leases.renew(holder=A, ttl_s=30) == {}
    assert await leases.renew(holder=B, ttl_s=30) == {resource: taken}


async def test_fencing_refuses_the_write_of_a_worker_whose_lease_was_taken_over(pg: PostgresDatabase) -> None:
    leases = PostgresLeases(pg)
    resource = thread_resource(1)
    stale = await leases.acquire(resource=resource, holder=A, ttl_s=30)
    assert stale is not None
    await fenced_write(pg, stale)
    await expire(pg, resource)
    with pytest.raises(LeaseLost):
        await fenced_write(pg, stale)  # expired: refused even before anyone else takes it
    fresh = await leases.acquire(resource=resource, holder=B, ttl_s=30)
    assert fresh is not None
    with pytest.raises(LeaseLost):
        await fenced_write(pg, stale)
    await fenced_write(pg, fresh)
    rows = await pg.fetchall("SELECT holder, token FROM writes ORDER BY token")
    assert [(r["holder"], r["token"]) for r in rows] == [(A, stale.token), (B, fresh.token)]


async def test_a_takeover_waits_for_the_holders_write_in_progress(pg: PostgresDatabase) -> None:
    leases = PostgresLeases(pg)
    resource = thread_resource(2)
    fence = await leases.acquire(resource=resource, holder=A, ttl_s=30)
    assert fence is not None
    checked = asyncio.Event()
    finish = asyncio.Event()

    async def slow_write() -> None:
        async with pg.transaction() as connection:
            await check_fence(connection, fence)
            checked.set()
            await finish.wait()

    writing = asyncio.create_task(slow_write())
    await checked.wait()

    async def take_over() -> Fence | None:
        await expire(pg, resource)
        return await leases.acquire(resource=resource, holder=B, ttl_s=30)

    takeover = asyncio.create_task(take_over())
    await wait_until_lock_wait(pg)
    assert not takeover.done()  # it waits on the lease row the write holds FOR SHARE
    finish.set()
    await writing
    taken = await takeover
    assert taken is not None and taken.holder == B and taken.token > fence.token


async def wait_until_lock_wait(db: PostgresDatabase) -> None:
    for _ in range(500):
        row = await db.fetchone("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        if row is not None and row["n"] > 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no statement waited on a lock")


async def test_release_hands_leases_back_at_once(pg: PostgresDatabase) -> None:
    leases = PostgresLeases(pg)
    for thread_id in (1, 2, 3):
        assert await leases.acquire(resource=thread_resource(thread_id), holder=A, ttl_s=30) is not None
    assert await leases.release(holder=A, resources=[thread_resource(1)]) == 1
    assert await leases.holder_of(resource=thread_resource(1)) is None
    assert await leases.release(holder=A) == 2
    taken = await leases.acquire(resource=thread_resource(2), holder=B, ttl_s=30)
    assert taken is not None and taken.token == 2


async def test_waiting_threads_are_claimable_unless_another_live_worker_owns_them(pg: PostgresDatabase) -> None:
    leases = PostgresLeases(pg)
    ids = []
    for name in ("t1", "t2", "t3"):
        row = await pg.fetchone(
            "INSERT INTO threads (platform, workspace, channel, thread, created_utc) "
            "VALUES ('slack', 'w', 'c', %s, 'now') RETURNING id",
            (name,),
        )
        assert row is not None
        ids.append(int(row["id"]))
        await pg.execute(
            "INSERT INTO messages (thread_id, platform_message_id, author_id, author_name, role, content, "
            "reply_state, sent_utc, logged_utc) VALUES (%s, 'm1', 'u', 'U', 'user', 'hi', 'waiting', 'now', 'now')",
            (ids[-1],),
        )
    assert await leases.acquire(resource=thread_resource(ids[0]), holder=A, ttl_s=30) is not None
    assert await leases.acquire(resource=thread_resource(ids[1]), holder=B, ttl_s=30) is not None
    assert await leases.claimable_waiting(holder=A, platforms=["slack"], limit=10) == [ids[0], ids[2]]
    assert await leases.claimable_waiting(holder=A, platforms=["discord"], limit=10) == []
    await expire(pg, thread_resource(ids[1]))
    assert await leases.claimable_waiting(holder=A, platforms=["slack"], limit=10) == ids


async def test_a_wake_reaches_only_the_worker_it_names(pg: PostgresDatabase) -> None:
    leases = PostgresLeases(pg)
    received: list[Wake] = []

    async def listen() -> None:
        async for wake in leases.wakes(holder=A):
            received.append(wake)

    listener = asyncio.create_task(listen())
    try:
        wake = Wake(to=A, kind="card", thread_id=5, detail={"card_id": "3"})
        await leases.listening()
        await leases.notify(Wake(to=B, kind="thread", thread_id=4))
        await leases.notify(wake)
        await wait_until(lambda: bool(received), what="a wake-up")
        assert {w.to for w in received} == {A}
        assert received[0] == wake
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


async def test_sqlite_has_one_worker_that_owns_everything() -> None:
    leases = SoleOwner()
    assert not leases.shared
    assert await leases.acquire(resource=thread_resource(1), holder=A, ttl_s=1) is not None
    assert await leases.acquire(resource=thread_resource(1), holder=B, ttl_s=1) is not None
    assert await leases.holder_of(resource=thread_resource(1)) is None
    assert [w async for w in leases.wakes(holder=A)] == []


async def test_a_claim_past_the_leases_own_expiry_asks_again_instead_of_trusting_the_cache(
    pg: PostgresDatabase,
) -> None:
    """A worker whose renewal stalled must not go on as the owner after another took the thread over."""
    leases = PostgresLeases(pg)
    a = ThreadOwnership(leases=leases, worker_id=A, lease_s=0.3)  # no loops started: renewal never runs
    claim = await a.claim(9)
    lease_time_over = time.monotonic() + 0.3
    assert isinstance(claim, Claim) and claim.new and claim.fence is not None
    assert await a.claim(9) == Claim(fence=claim.fence, new=False)  # within the lease: the cache answers
    await expire(pg, thread_resource(9))
    assert await leases.acquire(resource=thread_resource(9), holder=B, ttl_s=30) is not None
    await wait_until(lambda: time.monotonic() > lease_time_over, what="A's lease time to run out")
    assert await a.claim(9) == B
    assert a.fence(9) is None
