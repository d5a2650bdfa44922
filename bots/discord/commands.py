"""The in-thread commands as Discord slash commands, and the forget confirmation button.

``/retry``, ``/model [name]`` (autocompleted from ``LLM_MODELS``), ``/reply [mode]`` (all, mention or auto: when I
answer in the thread), ``/memory``, ``/export`` and ``/forget`` are
registered with one bulk overwrite from ``setup_hook``, for servers and DMs. Each is acknowledged at once
(deferred, ephemeral: only the asker sees the reply), turned into a :class:`bots.router.commands.Command` for the thread
it was used in, and the router's answer goes back as an ephemeral follow-up: a note, the export as a Markdown
file, or the "Forget this thread" button. That button is a ``DynamicItem`` (``tk-forget:<thread row id>:confirm``)
so a click works after a restart too. Allowlists are checked here, as for every event; the router decides the rest.
``/stop`` and the Stop button under an answer being written (``bots/discord/buttons.py``) both become a
``StopRequest`` for the thread they are used in (``bots/router/stopping.py``); only "Nothing to stop." is said back.
"""

from __future__ import annotations

import io
import logging
import re
from typing import Any

import discord
from discord import app_commands

from bots.discord import translate
from bots.discord.access import NOT_AVAILABLE, Check, is_allowed, origin_of_click
from bots.router.commands.flow import (
    COMMAND_FAILED,
    FORGET_LABEL,
    NOT_HERE,
    Command,
    CommandName,
    CommandResult,
    ForgetClick,
)
from bots.router.reply_modes import ReplyMode
from bots.router.threads import ThreadRouter
from bots.seam.messages import Author, StopRequest, ThreadKey
from bots.seam.ports import FORGET_BUTTON_PREFIX, forget_button_id, parse_forget_button_id

log = logging.getLogger(__name__)

DESCRIPTIONS = {
    CommandName.RETRY: "Write my last answer in this thread again",
    CommandName.MODEL: "Show or switch the model this thread uses",
    CommandName.REPLY: "Show or choose when I answer in this thread: every message, on mention, or auto",
    CommandName.MEMORY: "What I remember of this thread (only you see it)",
    CommandName.EXPORT: "This thread's log as a Markdown file (only you get it)",
    CommandName.FORGET: "Make me forget this thread: its log, summaries and session",
}
STOP_DESCRIPTION = "Stop the answer I am writing in this thread"
STOPPED = "Stopped."
AUTOCOMPLETE_MAX = 25  # Discord shows at most 25 choices


class ForgetButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=rf"{FORGET_BUTTON_PREFIX}:(?P<thread_id>[0-9]+):confirm",
):
    """The confirmation under ``/forget``; the click goes to the client's ``commands`` (a :class:`SlashCommands`)."""

    def __init__(self, thread_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=FORGET_LABEL, style=discord.ButtonStyle.danger, custom_id=forget_button_id(thread_id)
            )
        )
        self.thread_id = thread_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ForgetButton:
        return cls(int(match["thread_id"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        commands: SlashCommands = interaction.client.commands
        await commands.on_forget_click(interaction, self.thread_id)


def key_of_command(interaction: discord.Interaction[Any]) -> ThreadKey | None:
    """The thread a command was used in: a thread or a DM (a DM channel may come uncached, as a partial)."""
    key = translate.key_of_click(interaction)
    if key is None and interaction.guild_id is None and interaction.channel_id is not None:
        channel = str(interaction.channel_id)
        return ThreadKey(translate.PLATFORM, "", channel, channel)
    return key


class SlashCommands:
    """Builds the command tree's commands and runs them through the router."""

    def __init__(self, *, router: ThreadRouter, checks: list[Check], models: tuple[str, ...]) -> None:
        self._router = router
        self._checks = checks
        self._models = models

    def tree_for(self, client: discord.Client) -> app_commands.CommandTree[Any]:
        """A command tree for ``client`` holding the five commands, allowed in servers and in DMs with the bot."""
        tree: app_commands.CommandTree[Any] = app_commands.CommandTree(
            client,
            allowed_contexts=app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=False),
            allowed_installs=app_commands.AppInstallationType(guild=True, user=False),
        )
        for name in (CommandName.RETRY, CommandName.MEMORY, CommandName.EXPORT, CommandName.FORGET):
            tree.add_command(self._plain(name))
        tree.add_command(self._model())
        tree.add_command(self._reply())
        tree.add_command(self._stop())
        return tree

    def _stop(self) -> app_commands.Command[Any, Any, None]:
        async def run(interaction: discord.Interaction[Any]) -> None:
            await self.on_stop(interaction)

        return app_commands.Command(name="stop", description=STOP_DESCRIPTION, callback=run)

    def _plain(self, name: CommandName) -> app_commands.Command[Any, Any, None]:
        async def run(interaction: discord.Interaction[Any]) -> None:
            await self.on_command(interaction, name, "")

        return app_commands.Command(name=name.value, description=DESCRIPTIONS[name], callback=run)

    def _model(self) -> app_commands.Command[Any, Any, None]:
        async def run(interaction: discord.Interaction[Any], name: str | None = None) -> None:
            await self.on_command(interaction, CommandName.MODEL, name or "")

        async def names(interaction: discord.Interaction[Any], current: str) -> list[app_commands.Choice[str]]:
            wanted = current.strip().lower()
            found = [m for m in self._models if wanted in m.lower()]
            return [app_commands.Choice(name=m, value=m) for m in found[:AUTOCOMPLETE_MAX]]

        command: app_commands.Command[Any, Any, None] = app_commands.Command(
            name=CommandName.MODEL.value, description=DESCRIPTIONS[CommandName.MODEL], callback=run
        )
        app_commands.describe(name="One of the models the operator allows; leave empty to see them")(command)
        command.autocomplete("name")(names)
        return command

    def _reply(self) -> app_commands.Command[Any, Any, None]:
        async def run(interaction: discord.Interaction[Any], mode: str | None = None) -> None:
            await self.on_command(interaction, CommandName.REPLY, mode or "")

        command: app_commands.Command[Any, Any, None] = app_commands.Command(
            name=CommandName.REPLY.value, description=DESCRIPTIONS[CommandName.REPLY], callback=run
        )
        app_commands.describe(mode="all, mention or auto; leave empty to see this thread's")(command)
        choices = [app_commands.Choice(name=mode.value, value=mode.value) for mode in ReplyMode]
        app_commands.choices(mode=choices)(command)
        return command

    async def sync(self, tree: app_commands.CommandTree[Any]) -> None:
        """Register the commands (one bulk overwrite); a refusal is logged, and the bot runs on without them."""
        try:
            await tree.sync()
        except discord.HTTPException as exc:
            log.error("Discord refused the slash commands (%s); /retry, /model... will not show up", exc)

    def _allowed(self, interaction: discord.Interaction[Any]) -> bool:
        return is_allowed(origin_of_click(interaction), self._checks)

    async def on_command(self, interaction: discord.Interaction[Any], name: CommandName, argument: str) -> None:
        """Acknowledge within 3 seconds (ephemeral), ask the router, answer the asker alone."""
        try:
            key = key_of_command(interaction)
            if not self._allowed(interaction) or key is None:
                note = NOT_AVAILABLE if key is not None else NOT_HERE
                await interaction.response.send_message(note, ephemeral=True)
                return
            await interaction.response.defer(ephemeral=True, thinking=True)
            user = interaction.user
            command = Command(key, name, Author(str(user.id), user.display_name), argument=argument, raw=interaction)
            try:
                result = await self._router.handle_command(command)
            except Exception:
                log.exception("/%s failed in %s", name, key)
                result = CommandResult(private_note=COMMAND_FAILED)
            await self._answer(interaction, result)
        except discord.HTTPException as exc:
            log.error("Discord refused a call while running /%s: %s", name, exc)

    async def _answer(self, interaction: discord.Interaction[Any], result: CommandResult) -> None:
        extra: dict[str, Any] = {}
        if result.file is not None:
            extra["file"] = discord.File(io.BytesIO(result.file.data), filename=result.file.filename)
        if result.confirm_button is not None:
            thread_id = parse_forget_button_id(result.confirm_button)
            assert thread_id is not None, "the router gives a forget button id"
            view = discord.ui.View(timeout=None)
            view.add_item(ForgetButton(thread_id))
            extra["view"] = view
        await interaction.followup.send(result.private_note or "Done.", ephemeral=True, **extra)

    async def on_stop(self, interaction: discord.Interaction[Any]) -> None:
        """``/stop`` or the Stop button: the router stops the thread's answer; the asker alone hears back."""
        button = interaction.type is discord.InteractionType.component
        try:
            key = key_of_command(interaction)
            if not self._allowed(interaction) or key is None:
                await interaction.response.send_message(NOT_AVAILABLE if key is not None else NOT_HERE, ephemeral=True)
                return
            if button:
                await interaction.response.defer()  # the answer itself shows the stop
            else:
                await interaction.response.defer(ephemeral=True, thinking=True)
            user = interaction.user
            request = StopRequest(key, Author(str(user.id), user.display_name), raw=interaction)
            result = await self._router.handle_stop(request)
            if result.private_note or not button:
                await interaction.followup.send(result.private_note or STOPPED, ephemeral=True)
        except discord.HTTPException as exc:
            log.error("Discord refused a call while stopping an answer: %s", exc)

    async def on_forget_click(self, interaction: discord.Interaction[Any], thread_id: int) -> None:
        """The confirmation: the router purges the thread; the button's message then says it is done."""
        try:
            if not self._allowed(interaction):
                await interaction.response.send_message(NOT_AVAILABLE, ephemeral=True)
                return
            await interaction.response.defer()
            user = interaction.user
            click = ForgetClick(
                thread_id, Author(str(user.id), user.display_name), thread=key_of_command(interaction), raw=interaction
            )
            result = await self._router.handle_forget_click(click)
            await interaction.edit_original_response(content=result.private_note, view=None)
        except discord.HTTPException as exc:
            log.error("Discord refused a call while confirming forget: %s", exc)
