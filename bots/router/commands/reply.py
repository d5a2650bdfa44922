"""The ``reply`` command: how a thread's people choose when the bot answers there (``bots/router/reply_modes.py``).

``reply`` alone tells the thread's mode; ``reply all``, ``reply mention`` or ``reply auto`` changes it for the
thread, kept in ``thread_settings`` like the model choice, so it survives restarts; ``forget`` takes it with the
thread. Anyone the allowlists admit may change it: it only decides when the bot speaks up.
"""

from __future__ import annotations

import logging
from datetime import datetime

from bots.router.reply_modes import ReplyMode, ReplyModes, parse_reply_mode
from bots.seam.messages import Author

log = logging.getLogger(__name__)

MEANINGS = {
    ReplyMode.ALL: "I answer every message here",
    ReplyMode.MENTION: "I answer only messages that mention me or reply to mine",
    ReplyMode.AUTO: (
        "I answer every message while one person talks to me; once others join, only when I'm mentioned, replied "
        "to, or plainly addressed (my name first, or a question right after my answer)"
    ),
}
REPLY_NOW = "Reply mode here: {mode} ({meaning}). Change it with: reply all, reply mention or reply auto."
REPLY_SWITCHED = "Reply mode here is now {mode}: {meaning}."
REPLY_UNKNOWN = "I don't know the reply mode {name!r}. Choose one of: all, mention, auto."


async def run_reply(modes: ReplyModes, *, thread_id: int, argument: str, user: Author, now: datetime) -> str:
    """The note for the asker: the thread's mode, or its new one."""
    if not argument:
        mode = await modes.mode_for(thread_id)
        return REPLY_NOW.format(mode=mode.value, meaning=MEANINGS[mode])
    chosen = parse_reply_mode(argument)
    if chosen is None:
        return REPLY_UNKNOWN.format(name=argument)
    await modes.choose(thread_id=thread_id, mode=chosen, by_id=user.id, now=now)
    log.info("%s set the reply mode of thread %d to %s", user.id, thread_id, chosen.value)
    return REPLY_SWITCHED.format(mode=chosen.value, meaning=MEANINGS[chosen])
