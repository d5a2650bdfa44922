"""The loopback Slack's streaming methods keep Slack's rules, so the adapter's tests can fail for real."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import STREAM_CALL_LIMIT, TEAM, FakeSlack


async def error_of(call: object) -> str:
    with pytest.raises(SlackApiError) as raised:
        await call  # type: ignore[misc]
    return str(raised.value.response["error"])


async def test_the_fake_streams_markdown_or_chunks_and_refuses_what_slack_refuses(fake_slack: FakeSlack) -> None:
    client = AsyncWebClient(token="xoxb-x", base_url=fake_slack.api_url)
    assert await error_of(client.chat_startStream(channel="C1", thread_ts="1.0")) == "unknown_method"
    fake_slack.streaming = True
    assert await error_of(client.chat_startStream(channel="C1", thread_ts="1.0")) == "invalid_arguments"
    dm = await client.chat_startStream(channel="D1", thread_ts="1.0", markdown_text="Hi")  # a DM needs no recipient
    started = await client.chat_startStream(
        channel="C1", thread_ts="1.0", recipient_user_id="UALICE", recipient_team_id=TEAM
    )
    ts = str(started["ts"])
    await client.chat_appendStream(channel="C1", ts=ts, markdown_text="one ")
    await client.chat_appendStream(
        channel="C1",
        ts=ts,
        chunks=[
            {"type": "task_update", "id": "t1", "title": "Running x…", "status": "in_progress"},
            {"type": "markdown_text", "text": "two"},
        ],
    )
    too_long = client.chat_appendStream(channel="C1", ts=ts, markdown_text="x" * (STREAM_CALL_LIMIT + 1))
    assert await error_of(too_long) == "msg_too_long"
    await client.chat_stopStream(channel="C1", ts=ts, markdown_text=".", blocks=[{"type": "divider"}])
    again = client.chat_appendStream(channel="C1", ts=ts, markdown_text="late")
    assert await error_of(again) == "message_not_in_streaming_state"
    stream = fake_slack.streams[ts]
    assert (stream.text, stream.tasks, stream.stopped, stream.blocks) == (
        "one two.",
        {"t1": "in_progress"},
        True,
        [{"type": "divider"}],
    )
    assert fake_slack.streams[str(dm["ts"])].text == "Hi"


async def test_the_fake_allows_the_assistant_status_in_dms_only(fake_slack: FakeSlack) -> None:
    client = AsyncWebClient(token="xoxb-x", base_url=fake_slack.api_url)
    await client.assistant_threads_setStatus(channel_id="D1", thread_ts="1.0", status="is thinking…")
    refused = client.assistant_threads_setStatus(channel_id="C1", thread_ts="1.0", status="is thinking…")
    assert await error_of(refused) == "not_allowed"
