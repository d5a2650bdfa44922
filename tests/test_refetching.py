"""Which of a message's logged files a fresh description from its platform stands for (``bots/files/refetching.py``).

Pure: the adapters' fetches and the reading are exercised through the real clients in
``tests/discord/test_discord_files_after_restart.py``, ``tests/slack/test_slack_files_after_restart.py`` and
``tests/test_kill_files.py``.
"""

from __future__ import annotations

from bots.files.refetching import matched
from bots.seam.messages import Attachment, FileSource


def fresh(name: str, url: str) -> Attachment:
    return Attachment(name, "text/plain", 5, source=FileSource(url=url, platform="discord"))


def row(name: str, used: str = "pending") -> dict[str, object]:
    return {"filename": name, "content_type": "text/plain", "size_bytes": 5, "used": used}


def test_each_pending_row_gets_the_platforms_file_of_its_name_in_order_and_read_rows_get_none() -> None:
    a1, a2, b = fresh("a.txt", "u1"), fresh("a.txt", "u2"), fresh("b.txt", "u3")
    rows = [row("a.txt"), row("b.txt", used="inlined"), row("a.txt")]
    assert [f.source.url if f and f.source else None for f in matched(rows, [b, a1, a2])] == ["u1", None, "u2"]


def test_a_file_the_message_no_longer_carries_gets_none() -> None:
    assert matched([row("gone.txt"), row("kept.txt")], [fresh("kept.txt", "u")]) == [None, fresh("kept.txt", "u")]
    assert matched([row("a.txt")], []) == [None]
