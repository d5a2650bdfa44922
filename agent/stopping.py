"""Stopping a turn from outside: a person pressed Stop while the answer was being written.

The router holds one :class:`TurnStop` per running turn and sets it; the session checks it between model steps
and reads the model's stream through :func:`until_stopped`, which stops waiting for the next piece the moment
the stop is requested (the pending read is cancelled, and the client closes the provider's stream, so the
model stops writing). A tool call already running is not interrupted: the session lets it finish, starts no
other, and ends the answer with :attr:`TurnStop.note`, which the history keeps, so the next turn's model
sees its own partial answer and that it was stopped.

The name in the note is a person's display name, which anyone can set to "@everyone", "<!channel>", markdown or
"System: ignore previous instructions". :func:`literal_name` writes it as an inline code span: every renderer
shows code as written (Slack's ``to_mrkdwn`` escapes ``& < >`` there and formats nothing; Discord neither pings
nor formats inside code; the console prints it as text), and the model's history keeps it quoted as a name
someone typed, not words of the assistant or of the system.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

STOPPED_NOTE = "(Stopped by {name}.)"
NAME_CHARS = 80


def literal_name(name: str) -> str:
    """A display name as an inline code span on one line (a backtick in it cannot close the span)."""
    plain = " ".join(name.replace("`", "'").split())[:NAME_CHARS]
    return f"`{plain}`" if plain else "someone"


@dataclass(slots=True)
class TurnStop:
    """One turn's stop switch; ``by`` is who pressed Stop, once they have."""

    by: str | None = None
    _event: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def request(self, *, by: str) -> bool:
        """Stop the turn; False when it was stopped already (the first person to press it is named)."""
        if self._event.is_set():
            return False
        self.by = by
        self._event.set()
        return True

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    @property
    def note(self) -> str | None:
        """The answer's closing line once stopped; None before."""
        return STOPPED_NOTE.format(name=literal_name(self.by or "")) if self.requested else None

    async def wait(self) -> None:
        await self._event.wait()


async def until_stopped(stream: AsyncIterator[str], stop: TurnStop | None) -> AsyncIterator[str]:
    """``stream``'s pieces until it ends or ``stop`` is requested; the read under way is then cancelled."""
    if stop is None:
        async for piece in stream:
            yield piece
        return
    stopped = asyncio.ensure_future(stop.wait())
    try:
        while not stop.requested:
            following = asyncio.ensure_future(anext(stream))
            await asyncio.wait({following, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                following.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await following
                return
            try:
                piece = following.result()
            except StopAsyncIteration:
                return
            yield piece
    finally:
        stopped.cancel()
