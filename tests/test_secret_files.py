"""Secrets from files (issue 21): NAME_FILE names a file whose content is NAME, as Docker and Kubernetes mount them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.config import SECRET_SETTINGS, ConfigError, load_settings
from tests.test_config_and_cli import run_cli

SAMPLES = {
    "discord_token": "discord-token-from-a-file",
    "slack_bot_token": "xoxb-from-a-file",
    "slack_app_token": "xapp-from-a-file",
    "slack_signing_secret": "signing-secret-from-a-file",
    "slack_client_secret": "client-secret-from-a-file",
    "token_encryption_key": "bXlfMzJfYnl0ZV9rZXlfZnJvbV9hX2ZpbGVfX19fX18=",
    "llm_api_key": "sk-from-a-file",
    "database_url": "postgresql://threadkeeper:pa55word@db.internal:5432/threadkeeper",
}


def _value(settings: object, name: str) -> str:
    value = getattr(settings, name)
    return value if isinstance(value, str) else value.get_secret_value()


def test_every_secret_setting_has_a_sample() -> None:
    assert set(SAMPLES) == set(SECRET_SETTINGS)


@pytest.mark.parametrize("name", SECRET_SETTINGS)
def test_a_secret_is_read_from_the_file_its_FILE_variable_names_less_one_trailing_newline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    secret = tmp_path / name
    secret.write_text(SAMPLES[name] + "\n")
    monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv(f"{name.upper()}_FILE", str(secret))
    assert _value(load_settings(_env_file=None), name) == SAMPLES[name]


def test_only_one_trailing_newline_is_taken_and_a_crlf_counts_as_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "token"
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.setenv("DISCORD_TOKEN_FILE", str(secret))
    secret.write_bytes(b"abc\r\n")
    assert _value(load_settings(_env_file=None), "discord_token") == "abc"
    secret.write_bytes(b" abc \n\n")
    assert _value(load_settings(_env_file=None), "discord_token") == " abc \n"


def test_a_FILE_variable_in_the_env_file_works_and_a_blank_value_beside_it_is_no_clash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "slack_bot_token"
    secret.write_text("xoxb-dotenv\n")
    env_file = tmp_path / ".env"
    env_file.write_text(f"SLACK_BOT_TOKEN=\nSLACK_BOT_TOKEN_FILE={secret}\n")
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("SLACK_BOT_TOKEN_FILE", raising=False)
    settings = load_settings(_env_file=env_file)
    assert _value(settings, "slack_bot_token") == "xoxb-dotenv"


@pytest.mark.parametrize("where", ["environment", "keyword"])
def test_a_secret_set_both_ways_is_an_error_naming_both_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, where: str
) -> None:
    secret = tmp_path / "key"
    secret.write_text("sk-file")
    monkeypatch.setenv("LLM_API_KEY_FILE", str(secret))
    overrides = {}
    if where == "environment":
        monkeypatch.setenv("LLM_API_KEY", "sk-env")
    else:
        overrides = {"llm_api_key": "sk-keyword"}
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, **overrides)
    message = str(caught.value)
    assert "LLM_API_KEY and LLM_API_KEY_FILE are both set" in message
    assert "sk-" not in message


def test_an_unreadable_file_is_an_error_naming_the_variable_and_the_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-secret"
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    monkeypatch.setenv("SLACK_APP_TOKEN_FILE", str(missing))
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    message = str(caught.value)
    assert message.startswith(f"SLACK_APP_TOKEN_FILE is invalid: cannot read {missing} (No such file or directory)")
    assert "Set it to the path of a file" in message


def test_run_with_a_missing_secret_file_exits_2_naming_it_and_an_invalid_url_from_a_file_stays_secret(
    tmp_path: Path,
) -> None:
    missing = run_cli("run", env={"DISCORD_TOKEN_FILE": str(tmp_path / "gone")}, cwd=tmp_path)
    assert missing.returncode == 2
    assert f"DISCORD_TOKEN_FILE is invalid: cannot read {tmp_path / 'gone'}" in missing.stderr
    assert "Traceback" not in missing.stderr
    url = tmp_path / "database_url"
    url.write_text("mysql://threadkeeper:hunter2@db/tk\n")
    invalid = run_cli("run", env={"DATABASE_URL_FILE": str(url), "DISCORD_TOKEN": "x"}, cwd=tmp_path)
    assert invalid.returncode == 2
    assert invalid.stderr.count("DATABASE_URL is invalid") == 1
    assert "hunter2" not in invalid.stderr and "Traceback" not in invalid.stderr


def test_env_example_shows_a_FILE_line_for_every_secret_setting() -> None:
    example = (Path(__file__).resolve().parent.parent / ".env.example").read_text(encoding="utf-8")
    for name in SECRET_SETTINGS:
        assert f"# {name.upper()}_FILE=/run/secrets/{name}\n" in example
