"""The scopes "Add to Slack" asks for, read from ``slack-manifest.yml``: the one place they are written.

The manifest is what an operator pastes to create the app, so the install link asks for exactly what the app was
created with, and ``threadkeeper check`` names what an installation lacks against it. It is found next to the
source tree (a checkout, an editable install) or where the package installed it (``share/threadkeeper``, see
pyproject's data-files, which the container image uses).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import yaml  # type: ignore[import-untyped]

from bots.config import ConfigError

MANIFEST_NAME = "slack-manifest.yml"
PLACES = (
    Path(__file__).resolve().parents[3] / MANIFEST_NAME,
    Path(sys.prefix) / "share" / "threadkeeper" / MANIFEST_NAME,
)


@dataclass(frozen=True, slots=True)
class ManifestScopes:
    bot: tuple[str, ...]
    user: tuple[str, ...] = ()

    def missing(self, granted: str | list[str] | tuple[str, ...]) -> list[str]:
        """The manifest's bot scopes an installation was not granted."""
        have = set(granted.split(",") if isinstance(granted, str) else granted)
        return [scope for scope in self.bot if scope not in have]


def manifest_scopes(path: Path | None = None) -> ManifestScopes:
    """The bot (and user) scopes of the manifest; a ConfigError when it cannot be found or read."""
    candidates = (path,) if path is not None else PLACES
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise ConfigError(
            f"{MANIFEST_NAME} was not found (looked in {', '.join(str(p) for p in candidates)}). Slack installs "
            "(SLACK_CLIENT_ID) ask for the scopes it lists: reinstall threadkeeper from its source tree or image."
        )
    try:
        scopes = (yaml.safe_load(found.read_text(encoding="utf-8")) or {})["oauth_config"]["scopes"]
        return ManifestScopes(bot=tuple(scopes.get("bot") or ()), user=tuple(scopes.get("user") or ()))
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{found} has no readable oauth_config.scopes ({type(exc).__name__}).") from None
