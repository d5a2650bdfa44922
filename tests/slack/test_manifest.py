"""The shipped Slack manifest asks for exactly what the adapter uses."""

from __future__ import annotations

from pathlib import Path

import yaml  # type: ignore[import-untyped]

from bots.slack.adapter import EVENTS, REQUIRED_SCOPES
from bots.slack.shortcuts import SHORTCUTS

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


def test_manifest_declares_the_message_shortcuts_the_adapter_listens_for() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    declared = {s["callback_id"]: (s["name"], s["type"]) for s in manifest["features"]["shortcuts"]}
    assert declared == {callback_id: (name, "message") for callback_id, (_, name) in SHORTCUTS.items()}
    assert all(len(s["description"]) <= 80 and len(s["name"]) <= 24 for s in manifest["features"]["shortcuts"])
