"""The shipped Slack manifest asks for exactly what the adapter uses."""

from __future__ import annotations

from pathlib import Path

import yaml  # type: ignore[import-untyped]

from bots.slack.adapter import EVENTS, REQUIRED_SCOPES

MANIFEST = Path(__file__).resolve().parents[2] / "slack-manifest.yml"


def test_manifest_scopes_events_and_socket_mode_match_the_adapter() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(REQUIRED_SCOPES)
    settings = manifest["settings"]
    assert sorted(settings["event_subscriptions"]["bot_events"]) == sorted(EVENTS)
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is True
    agent = manifest["features"]["agent_view"]
    assert agent["agent_description"] and 0 < len(agent["suggested_prompts"]) <= 4
