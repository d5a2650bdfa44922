"""``threadkeeper check`` on a Postgres DATABASE_URL: reachable, which migrations the next start applies."""

from __future__ import annotations

from bots.operator.check import check_database
from storage.backends import open_storage
from tests.conftest import MakeSettings


async def test_check_reports_a_blank_then_a_current_postgres_and_changes_nothing(
    make_settings: MakeSettings, postgres_url: str
) -> None:
    settings = make_settings(database_url=postgres_url)
    blank = await check_database(settings)
    assert [c.ok for c in blank] == [True, True]
    assert blank[0].detail.startswith(f"{postgres_url} answers (Postgres ")
    assert blank[1].detail.startswith("the next start applies m001_initial, ")
    assert [c.detail for c in await check_database(settings)][1] == blank[1].detail  # check migrated nothing
    async with open_storage(postgres_url):
        pass
    assert [c.detail for c in await check_database(settings)][1] == "current"


async def test_check_names_an_unreachable_server_without_its_password(make_settings: MakeSettings) -> None:
    settings = make_settings(database_url="postgresql://tk:hunter2@127.0.0.1:1/tk")
    [check] = await check_database(settings)
    assert not check.ok
    assert check.detail.startswith("postgresql://tk:***@127.0.0.1:1/tk cannot be reached: ")
    assert "hunter2" not in check.detail and check.fix is not None and "DATABASE_URL" in check.fix
