"""Slack's feedback buttons (👍 / 👎) under a completed answer, and reading a click on them.

The buttons are Slack's own ``feedback_buttons`` element in a ``context_actions`` block. Each button's value
names the answer by the ts of its first message, which is the id the log keeps for the answer, so a click
works for any message of a long answer and after any number of restarts. Slack shows its own pressed state
on the button; the bot acknowledges the click at once and confirms it with an ephemeral "thanks" to the
clicker (``FEEDBACK_THANKS``), as Slack's guidance for these buttons does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bots.replies.render import split_message
from bots.seam.messages import Author, ThreadKey
from bots.slack.translate import click_thread

FEEDBACK_ACTION = "tk-feedback"
POSITIVE, NEGATIVE = "positive", "negative"
FEEDBACK_THANKS = {
    POSITIVE: "Thanks for your feedback: it is recorded for the people who run me.",
    NEGATIVE: "Thanks for your feedback: it is recorded for the people who run me. Tell me here what was wrong.",
}


def feedback_blocks(*, answer_id: str) -> list[dict[str, Any]]:
    """The context_actions block with 👍 / 👎 for the answer whose first message is ``answer_id``."""
    return [
        {
            "type": "context_actions",
            "block_id": f"tk-feedback-{answer_id}",
            "elements": [
                {
                    "type": "feedback_buttons",
                    "action_id": FEEDBACK_ACTION,
                    "positive_button": {
                        "text": {"type": "plain_text", "text": "👍"},
                        "accessibility_label": "Good answer",
                        "value": f"{POSITIVE}:{answer_id}",
                    },
                    "negative_button": {
                        "text": {"type": "plain_text", "text": "👎"},
                        "accessibility_label": "Bad answer",
                        "value": f"{NEGATIVE}:{answer_id}",
                    },
                }
            ],
        }
    ]


@dataclass(frozen=True, slots=True)
class FeedbackClick:
    """A 👍 / 👎 press: on which answer, in which thread, by whom."""

    thread: ThreadKey
    answer_id: str
    user: Author
    positive: bool


def feedback_click_from(body: Mapping[str, Any], action: Mapping[str, Any]) -> FeedbackClick | None:
    """The click, or None when the payload does not say which answer, where, or who."""
    rating, _, answer_id = str(action.get("value") or "").partition(":")
    thread = click_thread(body)
    user = body.get("user")
    if rating not in (POSITIVE, NEGATIVE) or not answer_id or thread is None or not isinstance(user, Mapping):
        return None
    if not user.get("id"):
        return None
    name = str(user.get("name") or user.get("username") or user["id"])
    return FeedbackClick(
        thread=thread, answer_id=answer_id, user=Author(str(user["id"]), name), positive=rating == POSITIVE
    )


def text_blocks(mrkdwn: str, *, section_limit: int) -> list[dict[str, Any]]:
    """A message's mrkdwn as section blocks (a message with blocks shows them, not its text)."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": part}}
        for part in split_message(mrkdwn, limit=section_limit)
    ]
