"""TokenSeal: the Slack tokens of every installation are encrypted before they reach the database.

Encryption lives here, in bots/, not in storage/: storage keeps opaque text and never holds a key, so a copy of
the database (a backup, ``migrate-db``, a ``pg_dump``) is useless without ``TOKEN_ENCRYPTION_KEY``, and the key is
read, checked and reported like every other setting, by the composition root. Fernet (``cryptography``, AES-128
in CBC with an HMAC-SHA256, a timestamp and a random IV per token) is the maintained, misuse-resistant choice;
``MultiFernet`` makes key rotation one setting: ``TOKEN_ENCRYPTION_KEY=new,old`` seals with the first key and
opens with any, and the start-up check re-seals what an older key sealed (``installations.py``). A wrong key is
a start-up error, never a silent "not installed".
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bots.config import ConfigError

GENERATE_KEY = 'python3 -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
MISSING_KEY = (
    "TOKEN_ENCRYPTION_KEY is not set. Slack installs (SLACK_CLIENT_ID / SLACK_CLIENT_SECRET) keep each workspace's "
    f"tokens encrypted with it. Generate one with: {GENERATE_KEY} and keep it secret (or set "
    "TOKEN_ENCRYPTION_KEY_FILE)."
)


class WrongKey(Exception):
    """A stored token was sealed with a key that TOKEN_ENCRYPTION_KEY does not hold."""


class TokenSeal:
    """Seal and open text with the key(s) of ``TOKEN_ENCRYPTION_KEY`` (comma-separated, the newest first)."""

    def __init__(self, keys: str) -> None:
        parts = [part.strip() for part in keys.split(",") if part.strip()]
        if not parts:
            raise ConfigError(MISSING_KEY)
        fernets = []
        for number, part in enumerate(parts, start=1):
            try:
                fernets.append(Fernet(part.encode()))
            except ValueError:
                which = "" if len(parts) == 1 else f" (key {number} of {len(parts)})"
                raise ConfigError(
                    f"TOKEN_ENCRYPTION_KEY is invalid{which}: a key is 32 bytes in url-safe base64 (44 characters). "
                    f"Generate one with: {GENERATE_KEY}"
                ) from None
        self._newest = fernets[0]
        self._all = MultiFernet(fernets)

    def seal(self, text: str) -> str:
        return self._all.encrypt(text.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._all.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise WrongKey from None

    def is_current(self, sealed: str) -> bool:
        """Whether the newest key sealed it (else re-seal it once the older key is still in the list)."""
        try:
            self._newest.decrypt(sealed.encode())
        except InvalidToken:
            return False
        return True


def wrong_key_error(*, installations: int) -> ConfigError:
    return ConfigError(
        f"TOKEN_ENCRYPTION_KEY cannot decrypt the tokens of {installations} stored Slack installation(s): it is not "
        "the key they were sealed with. Set it back to that key; to change keys, set TOKEN_ENCRYPTION_KEY=NEW,OLD "
        f"(a new key from: {GENERATE_KEY}) until the bot has started once, then drop OLD."
    )
