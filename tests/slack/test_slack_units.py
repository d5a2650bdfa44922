"""The Slack adapter's pure parts: payload translation, allowlist origins, mrkdwn, and the Block Kit card."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings

from bots.files.downloads import FetchPolicy
from bots.seam.messages import MALFORMED_FILE, CardAction, ThreadKey
from bots.seam.ports import CardState, CatchUpCard
from bots.slack import translate
from bots.slack.access import Origin, origin_of
from bots.slack.mrkdwn import to_mrkdwn
from bots.slack.outbox import card_blocks
from bots.slack.stream import guarded
from tests.fakes.slack import BOT_USER, TEAM, Payloads
from tests.slack_payloads import messages_with_files


def test_a_top_level_mention_starts_a_thread_under_itself_and_loses_the_mention() -> None:
    event = Payloads.mention("what's the plan?", channel="C7")
    body = Payloads.event_body(event, event_id="Ev123")
    message = translate.message_from(body, event, bot_user_id=BOT_USER, display_name="Alice")
    assert message.thread == ThreadKey("slack", TEAM, "C7", event["ts"])
    assert message.message_id == event["ts"]
    assert message.text == "what's the plan?"
    assert message.author.id == "UALICE" and message.author.display_name == "Alice"
    assert message.event_key == "Ev123"
    assert message.sent_utc.timestamp() == pytest.approx(float(event["ts"]))


def test_a_reply_belongs_to_its_roots_thread_and_a_dm_reply_to_the_dms_thread() -> None:
    root = Payloads.ts()
    in_thread = Payloads.message("follow-up", thread_ts=root)
    dm_reply = Payloads.dm("more", thread_ts=root)
    dm_top = Payloads.dm("new question")
    for event, thread in ((in_thread, root), (dm_reply, root), (dm_top, dm_top["ts"])):
        message = translate.message_from(Payloads.event_body(event), event, bot_user_id=BOT_USER, display_name="")
        assert message.thread.thread == thread
        assert message.author.display_name == "UALICE"  # no name known: the id


def test_files_become_attachments() -> None:
    event = Payloads.message("see file", thread_ts="1.0") | {
        "subtype": "file_share",
        "files": [{"name": "notes.txt", "mimetype": "text/plain", "size": 12}, "not-a-file"],
    }
    message = translate.message_from(Payloads.event_body(event), event, bot_user_id=BOT_USER, display_name="A")
    assert [(a.filename, a.content_type, a.size_bytes, a.unreadable) for a in message.attachments] == [
        ("notes.txt", "text/plain", 12, None),
        ("file", "application/octet-stream", 0, MALFORMED_FILE),  # named to the model as unreadable, not dropped
    ]


@pytest.mark.parametrize("missing", ["channel", "ts", "user"])
def test_a_message_without_channel_ts_or_user_is_a_payload_error(missing: str) -> None:
    event = Payloads.mention("x")
    del event[missing]
    with pytest.raises(translate.SlackPayloadError):
        translate.message_from(Payloads.event_body(event), event, bot_user_id=BOT_USER, display_name="A")


def test_bots_and_the_bot_itself_are_recognised() -> None:
    assert translate.is_from_a_bot({"bot_id": "B2"}, bot_user_id=BOT_USER)
    assert translate.is_from_a_bot({"subtype": "bot_message"}, bot_user_id=BOT_USER)
    assert translate.is_from_a_bot({"user": BOT_USER}, bot_user_id=BOT_USER)
    assert not translate.is_from_a_bot({"user": "UALICE"}, bot_user_id=BOT_USER)


def test_edits_and_deletions_name_the_message_and_its_thread() -> None:
    changed = Payloads.changed(ts="5.0", text=f"<@{BOT_USER}> fixed", thread_ts="1.0")
    edit = translate.edit_from(Payloads.event_body(changed), changed, bot_user_id=BOT_USER)
    assert edit is not None
    assert (edit.thread.thread, edit.message_id, edit.text) == ("1.0", "5.0", "fixed")
    deleted = Payloads.deleted(ts="5.0", thread_ts="1.0")
    deletion = translate.deletion_from(Payloads.event_body(deleted), deleted)
    assert (deletion.thread.thread, deletion.message_id) == ("1.0", "5.0")
    bot_edit = Payloads.changed(ts="6.0", text="x", thread_ts="1.0", user=BOT_USER)
    assert translate.edit_from(Payloads.event_body(bot_edit), bot_edit, bot_user_id=BOT_USER) is None
    unfurled = Payloads.changed(ts="5.0", text="see https://example.org", thread_ts="1.0") | {
        "previous_message": {"type": "message", "ts": "5.0", "text": "see https://example.org"}
    }
    assert translate.edit_from(Payloads.event_body(unfurled), unfurled, bot_user_id=BOT_USER) is None


def test_a_card_click_carries_the_card_and_the_action_and_other_buttons_are_none() -> None:
    click = translate.click_from(Payloads.click("tk-card:42:fresh", user="UBOB"), {"value": "tk-card:42:fresh"})
    assert click is not None
    assert (click.card_id, click.action, click.user.id) == (42, CardAction.FRESH, "UBOB")
    for value in ("tk-card:x:fresh", "tk-card:1:explode", "approve-expense", ""):
        assert translate.click_from(Payloads.click(value), {"value": value, "action_id": value}) is None


def test_origins_of_events_and_clicks_for_the_allowlists() -> None:
    mention = Payloads.event_body(Payloads.mention("hi", user="UBOB", channel="C2"))
    assert origin_of(mention) == Origin(team=TEAM, channel="C2", user="UBOB", kind="channel")
    dm = Payloads.event_body(Payloads.dm("hi", channel="D9"))
    assert origin_of(dm) == Origin(team=TEAM, channel="D9", user="UALICE", kind="dm")
    click = Payloads.click("tk-card:1:fresh", user="UCAROL", channel="C3")
    assert origin_of(click) == Origin(team=TEAM, channel="C3", user="UCAROL", kind="click")
    edit = Payloads.event_body(Payloads.changed(ts="2.0", text="x", thread_ts="1.0"))
    assert origin_of(edit) is None
    assert origin_of({"type": "url_verification", "challenge": "c"}) is None


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("**bold** and __bold__", "*bold* and *bold*"),
        ("*italic* and ~~gone~~", "_italic_ and ~gone~"),
        ("[the docs](https://example.org/a?b=1&c=2)", "<https://example.org/a?b=1&amp;c=2|the docs>"),
        ("# Title\n\n## Part two ##\ntext", "*Title*\n\n*Part two*\ntext"),
        ("- one\n* two\n  - nested", "• one\n• two\n  • nested"),
        ("keep `**this** & <that>` as code", "keep `**this** &amp; &lt;that&gt;` as code"),
        (
            "```python\nx = a**2 < b  # [no](https://link)\n```\nafter **it**",
            "```\nx = a**2 &lt; b  # [no](https://link)\n```\nafter *it*",
        ),
        ("say <!channel> to <@U123>", "say &lt;!channel&gt; to &lt;@U123&gt;"),
        ("a 2*3*4 product", "a 2*3*4 product"),
        ("```\nunclosed **code", "```\nunclosed **code"),
    ],
)
def test_markdown_becomes_slack_mrkdwn_and_code_is_not_reformatted(markdown: str, mrkdwn: str) -> None:
    assert to_mrkdwn(markdown) == mrkdwn


def _card(state: CardState, **extra: Any) -> CatchUpCard:
    return CatchUpCard(card_id=7, thread=ThreadKey("slack", TEAM, "C1", "1.0"), state=state, **extra)


def test_a_pending_card_has_a_section_and_two_buttons_carrying_card_and_action() -> None:
    section, actions = card_blocks(_card(CardState.PENDING))
    assert section["type"] == "section" and section["text"]["text"].startswith("*Where were we?*\n")
    catch_up, fresh = actions["elements"]
    assert (catch_up["text"]["text"], catch_up["style"]) == ("Catch me up", "primary")
    assert catch_up["action_id"] == catch_up["value"] == "tk-card:7:catch_up"
    assert fresh["text"]["text"] == "Start fresh" and "style" not in fresh
    assert fresh["action_id"] == fresh["value"] == "tk-card:7:fresh"


@pytest.mark.parametrize(
    ("state", "words"),
    [(CardState.CATCHING_UP, "Catching up"), (CardState.CAUGHT_UP, "Caught up"), (CardState.FRESH, "Started fresh")],
)
def test_a_chosen_card_shows_the_outcome_and_who_chose_with_no_buttons(state: CardState, words: str) -> None:
    blocks = card_blocks(_card(state, chosen_by="Bob"))
    assert all(b["type"] != "actions" for b in blocks)
    assert words in str(blocks) and "Bob" in str(blocks)


def test_in_a_shared_channel_the_allowlist_sees_the_clickers_own_team() -> None:
    click = Payloads.click("tk-card:1:fresh", user="UERIN", channel="CSHARED")
    click["user"]["team_id"] = "TPARTNER"  # team.id stays the workspace the app posted from
    assert origin_of(click) == Origin(team="TPARTNER", channel="CSHARED", user="UERIN", kind="click")
    assert origin_of(Payloads.event_body(Payloads.message("hi", user="UERIN", team="TPARTNER"))) == Origin(
        team="TPARTNER", channel="C1", user="UERIN", kind="channel"
    )


def test_suggested_prompts_are_json_pairs_at_most_four_and_empty_means_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from bots.config import DEFAULT_SUGGESTED_PROMPTS, Settings

    def prompts(value: str) -> object:
        monkeypatch.setenv("SLACK_SUGGESTED_PROMPTS", value)
        return Settings(_env_file=None).slack_suggested_prompts  # type: ignore[call-arg]

    assert prompts('[["Plan", "Plan my week"]]') == (("Plan", "Plan my week"),)
    assert prompts("[]") == ()
    assert prompts("") == DEFAULT_SUGGESTED_PROMPTS
    five = "[" + ", ".join(['["a", "b"]'] * 5) + "]"
    for bad in ("nope", five, '[["", "b"]]'):
        with pytest.raises(ValidationError, match="slack_suggested_prompts"):
            prompts(bad)


def test_no_split_of_streamed_text_between_two_appends_can_form_a_mention() -> None:
    text = "ping <!here>, <@U1> and <#C1> now<"
    forms_mention = re.compile(r"<[@!#]")
    assert forms_mention.search(guarded(text)) is None
    for cut in range(len(text) + 1):
        shown = guarded(text[:cut]) + guarded(text[cut:])
        assert forms_mention.search(shown) is None, cut
        assert shown.replace("\u200b", "") == text


@settings(max_examples=300, deadline=None, database=None)
@given(messages_with_files)
def test_any_files_field_gives_attachments_and_a_fetch_decision_never_an_exception(event: dict[str, Any]) -> None:
    message = translate.message_from(
        Payloads.event_body(event), event, bot_user_id=BOT_USER, display_name="", download_headers={"A": "b"}
    )
    policy = FetchPolicy.for_platforms(slack_api_url="http://127.0.0.1:1/api/")
    for attachment in message.attachments:
        assert isinstance(attachment.filename, str) and isinstance(attachment.content_type, str)
        assert isinstance(attachment.size_bytes, int) and attachment.size_bytes >= 0
        if attachment.source is not None:
            policy.why_not(attachment.source)
    translate.is_users_message(event, bot_user_id=BOT_USER)


def test_a_files_field_that_is_not_a_list_of_descriptions_is_unreadable_files_not_a_crash() -> None:
    good = {"name": "a.txt", "mimetype": "text/plain", "size": 3, "url_private": "https://files.slack.com/a"}
    odd = [good, {"name": "b.txt", "size": "12kb"}, {"size": {}}, {"size": float("inf")}, {"size": float("nan")}, 5]
    lone = {"name": "c.txt", "size": 3, "url_private": "https://files.slack.com/c"}  # an object, not a list of them
    for files, readable in ((odd, ["a.txt"]), (5, []), ("x", []), (lone, [])):
        event = Payloads.message("files", thread_ts="1.0") | {"files": files}
        attachments = translate.attachments_of(event, download_headers={"Authorization": "Bearer x"})
        assert [a.filename for a in attachments if a.unreadable is None] == readable
        assert all(a.size_bytes == 0 and a.source is None for a in attachments if a.unreadable is not None)
    [good_file] = translate.attachments_of({"files": [good]}, download_headers={"Authorization": "Bearer x"})
    assert good_file.source is not None and good_file.source.platform == "slack"
