"""Files in the terminal: ``/attach PATH…`` holds files on this machine for the next message typed.

The console's user is the machine's user, so a path they type is theirs to read; the files then go through
the same pipeline as Discord's and Slack's (``bots/files/attachments.py``), read from disk instead of downloaded.
"""

from __future__ import annotations

import mimetypes
import os
import shlex

from bots.seam.messages import Attachment, FileSource

ATTACH_COMMAND = "/attach"


def is_attach_command(line: str) -> bool:
    return line.strip().split(" ", 1)[0].lower() == ATTACH_COMMAND


def files_to_attach(line: str) -> tuple[tuple[Attachment, ...], str]:
    """The files an ``/attach`` line names, and what to print about them (a missing one is said, not held)."""
    try:
        paths = shlex.split(line.strip())[1:]
    except ValueError as exc:
        return (), f"(could not read that line: {exc})"
    if not paths:
        return (), f"(usage: {ATTACH_COMMAND} PATH [PATH…]; the files go with your next message)"
    held: list[Attachment] = []
    missing: list[str] = []
    for path in paths:
        full = os.path.abspath(os.path.expanduser(path))
        if not os.path.isfile(full):
            missing.append(path)
            continue
        kind = mimetypes.guess_type(full)[0] or "application/octet-stream"
        held.append(Attachment(os.path.basename(full), kind, os.path.getsize(full), FileSource("", local_path=full)))
    said = [f"(attached {', '.join(a.filename for a in held)}: they go with your next message)"] if held else []
    said += [f"(no such file: {path})" for path in missing]
    return tuple(held), "\n".join(said)
