"""``threadkeeper check`` in OAuth mode: the Slack installations the database holds, and what each lacks.

With "Add to Slack" there is no one token to test: each workspace that installed the app has its own, sealed in
the database. The check lists every installation by team name and id, opens its tokens with
TOKEN_ENCRYPTION_KEY (a wrong key is reported here before ``run`` refuses to start) and names the scopes of
slack-manifest.yml it was not granted (an installation made before the manifest grew needs a reinstall through
/slack/install). It reads the database without migrating it and calls no Slack method.
"""

from __future__ import annotations

from bots.config import ConfigError, Settings
from bots.operator.check_lines import Check, failed, passed
from bots.slack.install.distribution import INSTALL_PATH, distribution_problem
from bots.slack.install.scopes import manifest_scopes
from bots.slack.install.sealing import TokenSeal, WrongKey
from storage.backends import open_storage


async def check_slack_installs(settings: Settings) -> list[Check]:
    problem = distribution_problem(settings)
    if problem is not None:
        return [failed("slack installs", "the settings cannot run Slack installs", problem)]
    assert settings.token_encryption_key is not None
    try:
        scopes = manifest_scopes()
        seal = TokenSeal(settings.token_encryption_key.get_secret_value())
    except ConfigError as exc:
        return [failed("slack installs", "cannot start", str(exc))]
    try:
        async with open_storage(settings.database_url, migrate=False) as storage:
            rows = await storage.slack_installations.all()
    except Exception as exc:  # a database never migrated to m010 has no installations table yet
        return [failed("slack installs", f"cannot read the installations ({type(exc).__name__})", "run the bot once")]
    checks = [
        passed(
            "slack mode",
            f"installs through {INSTALL_PATH} (HTTP mode, port {settings.port}); {len(rows)} workspace(s) installed",
        )
    ]
    for row in rows:
        name = f"slack {row.team_name or '?'} ({row.team_id or row.enterprise_id})"
        try:
            seal.open(row.tokens_ciphertext)
        except WrongKey:
            checks.append(
                failed(
                    name, "its tokens cannot be decrypted", "set TOKEN_ENCRYPTION_KEY to the key they were sealed with"
                )
            )
            continue
        missing = scopes.missing(row.bot_scopes)
        if missing:
            checks.append(failed(name, f"lacks {', '.join(missing)}", f"reinstall it through {INSTALL_PATH}"))
        else:
            checks.append(passed(name, f"installed {row.installed_utc[:10]}, all {len(scopes.bot)} scopes granted"))
    return checks
