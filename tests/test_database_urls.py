"""DATABASE_URL: which backend it names, and its password never shown or logged."""

from __future__ import annotations

import pytest

from bots.operator.redaction import configured_secrets
from storage.backends import Backend, UnsupportedDatabaseURL, backend_of, describe_url
from tests.conftest import MakeSettings


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("sqlite:///data/x.db", Backend.SQLITE),
        ("postgresql://u:p@db:5432/tk", Backend.POSTGRES),
        ("postgres://db/tk", Backend.POSTGRES),
    ],
)
def test_a_url_names_its_backend(url: str, backend: Backend) -> None:
    assert backend_of(url) is backend


def test_any_other_url_is_refused_with_both_forms() -> None:
    with pytest.raises(UnsupportedDatabaseURL, match=r"sqlite:///relative/path\.db.*postgresql://user:password@host"):
        backend_of("mysql://db/tk")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://tk:s3cret@db:5432/tk", "postgresql://tk:***@db:5432/tk"),
        ("postgresql://tk@db/tk?password=s3cret&sslmode=require", "postgresql://tk@db/tk?password=***&sslmode=require"),
        ("postgresql:///tk?host=/var/run/postgresql", "postgresql:///tk?host=/var/run/postgresql"),
        ("sqlite:///data/x.db", "sqlite:///data/x.db"),
    ],
)
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert describe_url(url) == shown


def test_the_database_password_is_a_secret_and_its_user_name_is_not(make_settings: MakeSettings) -> None:
    assert "s3cret" in configured_secrets(make_settings(database_url="postgresql://threadkeeper:s3cret@db/tk"))
    plain = configured_secrets(make_settings(database_url="postgresql://threadkeeper@db/tk?password=hunter2"))
    assert "hunter2" in plain and "threadkeeper" not in plain
