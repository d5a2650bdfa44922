"""R4, bad input: odd messages through the router, malformed and forged requests to the real slack-bolt app over
signed HTTP, generated Slack payloads through the translators, a model answer that loops, and a PDF built to take
pypdf minutes sent as a Slack file (read in the reading box while the event loop keeps answering).

Every case counts outcomes; ``python -m bench.drills.run --only R4``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.litellm_import import litellm_module
from agent.runaway import LOOP_NOTE
from bench.common import Result, settings_for
from bench.drills.in_process import router_on
from bots.app import open_router
from bots.files.downloads import FetchPolicy
from bots.seam.messages import Attachment, IncomingMessage
from bots.seam.ports import parse_card_button_id
from bots.slack import SlackAdapter, translate
from tests.attachment_files import slow_pdf
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads, post_event, post_interaction, signed_headers
from tests.fakes.waiting import wait_until
from tests.router_harness import ALICE, message, thread_key
from tests.slack.test_slack_attachments import bot_texts, with_files
from tests.slack_payloads import json_values, messages_with_files

SECRET = "drill-signing-secret"
LOOP_TRIALS = 5
LOOP_SPAN = "To restart the worker, stop the service, clear the queue and start it again, then check the log. "
READ_BUDGET_S = 1.0  # ATTACHMENT_READ_BUDGET_S for the hostile PDF
DNS_ANSWER_S = 1.0  # a lookup of localhost answers in milliseconds when the loop's executor is free


ODD_TEXTS = [
    "x" * 100_000,
    "",
    "\u202eRTL override\u202c and zero\u200bwidth and \U0001f9ea emoji",
    "NUL \x00 inside",
    "\ud83d lone surrogate".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
    "```unclosed code fence",
    "<@U123> <!channel> <script>alert(1)</script>",
]


async def r4_router_inputs(llm: FakeLLM) -> tuple[int, int, int]:
    """Odd texts and attachment-only messages: each must be logged once and answered."""
    cases = crashes = answered = 0
    with tempfile.TemporaryDirectory() as tmp:
        async with router_on(llm, Path(tmp) / "r4.db") as bot:
            inputs = [message(text, thread=thread_key(f"odd{i}")) for i, text in enumerate(ODD_TEXTS)]
            inputs.append(
                IncomingMessage(
                    thread_key("attachment"),
                    "att-1",
                    ALICE,
                    "",
                    attachments=(Attachment("photo.png", "image/png", 123_456),),
                )
            )
            for incoming in inputs:
                cases += 1
                try:
                    await bot.router.handle_message(incoming)
                    await bot.router.idle()
                except Exception:
                    crashes += 1
            answered = len({r.thread for r in bot.outbox.replies})
    return cases, crashes, answered


async def r4_slack_inputs(llm: FakeLLM) -> dict[str, int]:
    """Malformed and forged HTTP-mode requests to the real slack-bolt app."""
    counts = {"requests": 0, "5xx": 0, "401 for bad signatures": 0, "logged": 0}
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeSlack() as slack:
            port = _free_port()
            config = settings_for(
                llm,
                Path(tmp) / "r4s.db",
                slack_bot_token="xoxb-x",
                slack_signing_secret=SECRET,
                slack_api_url=slack.api_url,
                port=port,
            )
            async with open_router(config) as router:
                adapter = SlackAdapter(settings=config, router=router)
                await adapter.start()
                url = f"http://127.0.0.1:{port}/slack/events"
                bodies: list[tuple[bytes, str, bool]] = [
                    (b"\xff\xfe not utf-8", "application/json", True),
                    (b"{not json", "application/json", True),
                    (b"payload=%7Bnot-json", "application/x-www-form-urlencoded", True),
                    (json.dumps({"type": "event_callback"}).encode(), "application/json", True),
                    (json.dumps(Payloads.event_body({"type": "app_mention"})).encode(), "application/json", True),
                    (json.dumps(Payloads.event_body(Payloads.mention("forged"))).encode(), "application/json", False),
                    # Malformed file entries: each message is still logged, its odd files named unreadable.
                    (
                        json.dumps(Payloads.event_body(_with_files(Payloads.mention("odd sizes"), ODD_FILES))).encode(),
                        "application/json",
                        True,
                    ),
                    (
                        json.dumps(Payloads.event_body(_with_files(Payloads.mention("files: 5"), 5))).encode(),
                        "application/json",
                        True,
                    ),
                ]
                async with aiohttp.ClientSession() as session:
                    for raw, kind, signed in bodies:
                        text = raw.decode("utf-8", "replace")
                        headers = {"Content-Type": kind, **signed_headers(SECRET if signed else "wrong", text)}
                        async with session.post(url, data=raw, headers=headers) as response:
                            counts["requests"] += 1
                            counts["5xx"] += int(response.status >= 500)
                            counts["401 for bad signatures"] += int(not signed and response.status == 401)
                for value in ("tk-card:999999:catch_up", "tk-card:abc:fresh", "other-app-button", "tk-card:1:explode"):
                    counts["requests"] += 1
                    status = await post_interaction(url, SECRET, Payloads.click(value))
                    counts["5xx"] += int(status >= 500)
                counts["requests"] += 1
                counts["5xx"] += int(
                    await post_event(url, SECRET, Payloads.event_body(Payloads.mention("real"))) >= 500
                )
                await asyncio.sleep(0.3)
                await router.idle()
                await adapter.stop()
            connection = sqlite3.connect(Path(tmp) / "r4s.db")
            counts["logged"] = connection.execute("SELECT count(*) FROM messages WHERE role = 'user'").fetchone()[0]
            connection.close()
    return counts


ODD_FILES = [{"name": "a.txt", "size": "12kb"}, {"size": {}}, {"size": float("inf")}, {"size": float("nan")}, 5]


def _with_files(event: dict[str, Any], files: object) -> dict[str, Any]:
    return event | {"files": files}


def r4_hypothesis() -> tuple[int, int]:
    """Generated Slack payloads through the translators: only SlackPayloadError or None may come out.

    Besides arbitrary JSON, well-formed messages carry generated ``files`` (wrong types, sizes of "12kb", inf,
    nan, entries that are not descriptions), whose attachments then go through the download policy.
    """
    examples = crashes = 0
    policy = FetchPolicy.for_platforms(slack_api_url="http://127.0.0.1:1/api/")
    event_keys = st.sampled_from(
        [
            "type",
            "channel",
            "user",
            "ts",
            "thread_ts",
            "text",
            "subtype",
            "message",
            "deleted_ts",
            "previous_message",
            "files",
            "team",
            "bot_id",
        ]
    )
    events = st.dictionaries(event_keys, json_values, max_size=8)

    def with_files(event: dict[str, Any]) -> None:
        headers = {"Authorization": "Bearer x"}
        message = translate.message_from({}, event, bot_user_id="UBOT", display_name="x", download_headers=headers)
        for attachment in message.attachments:
            if attachment.source is not None:
                policy.why_not(attachment.source)

    @settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(events, events, messages_with_files)
    def check(body: dict[str, Any], event: dict[str, Any], sharing: dict[str, Any]) -> None:
        nonlocal examples, crashes
        examples += 1
        for call in (
            lambda: with_files(sharing),
            lambda: translate.is_users_message(event, bot_user_id="UBOT"),
            lambda: translate.message_from(body, event, bot_user_id="UBOT", display_name="x"),
            lambda: translate.edit_from(body, event, bot_user_id="UBOT"),
            lambda: translate.deletion_from(body, event),
            lambda: translate.click_from(body, event),
            lambda: parse_card_button_id(str(event.get("text"))),
        ):
            try:
                call()
            except translate.SlackPayloadError:
                pass
            except Exception:
                crashes += 1

    check()
    return examples, crashes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def r4_looping(llm: FakeLLM) -> dict[str, int]:
    """A model that repeats one paragraph until the client leaves: each answer must be cut, end with the note,
    and close the model's stream (counted by the fake: the characters it managed to send)."""
    counts = {"answers": 0, "cut with the note": 0, "streams closed": 0, "chars sent by the model (most)": 0}
    with tempfile.TemporaryDirectory() as tmp:
        async with router_on(llm, Path(tmp) / "r4loop.db", llm_max_output_tokens=1000) as bot:
            for trial in range(LOOP_TRIALS):
                llm.reply_looping("Here are the steps. ", span=LOOP_SPAN)
                await bot.say("how do I restart the worker?", thread=thread_key(f"loop{trial}"))
                request = llm.requests[-1]
                closed = functools.partial(getattr, request, "client_gone")
                await wait_until(closed, what="the model's stream closed", timeout=10)
                [answer] = [r.text for r in bot.outbox.replies if r.thread == thread_key(f"loop{trial}")]
                counts["answers"] += 1
                counts["cut with the note"] += int(answer.endswith(LOOP_NOTE) and len(answer) < 2_000)
                counts["streams closed"] += int(request.client_gone)
                counts["chars sent by the model (most)"] = max(
                    counts["chars sent by the model (most)"], request.sent_chars
                )
    return counts


async def r4_hostile_pdf(llm: FakeLLM) -> dict[str, Any]:
    """A Slack file of a few KB that takes pypdf minutes, beside a small text file, posted over signed HTTP: the
    thread gets the note and the answer within the reading budget, while lookups through the loop's executor (as
    aiohttp resolves hosts) keep answering."""
    counts: dict[str, Any] = {"notes": 0, "answers": 0, "seconds to the answer": 0.0, "lookups": 0, "answered": 0}
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeSlack() as slack:
            port = _free_port()
            config = settings_for(
                llm,
                Path(tmp) / "r4pdf.db",
                slack_bot_token=slack.bot_token,
                slack_signing_secret=SECRET,
                slack_api_url=slack.api_url,
                port=port,
                attachment_read_budget_s=READ_BUDGET_S,
            )
            async with open_router(config) as router:
                adapter = SlackAdapter(settings=config, router=router)
                await adapter.start()
                files = (
                    slack.file("slow.pdf", slow_pdf(), mimetype="application/pdf"),
                    slack.file("question.txt", b"what is 6 x 7?", mimetype="text/plain"),
                )
                llm.reply("42, and the PDF could not be read.")
                await litellm_module()  # a process's first turn also imports litellm (seconds), not timed here
                mention = with_files(Payloads.mention("read these"), *files)
                loop = asyncio.get_running_loop()
                started = loop.time()
                url = f"http://127.0.0.1:{port}/slack/events"
                posting = asyncio.create_task(post_event(url, SECRET, Payloads.event_body(mention)))
                while len(bot_texts(slack, mention["ts"])) < 2 and loop.time() - started < 30:
                    counts["lookups"] += 1
                    try:
                        await asyncio.wait_for(loop.getaddrinfo("localhost", 443), DNS_ANSWER_S)
                        counts["answered"] += 1
                    except TimeoutError:
                        pass
                    await asyncio.sleep(0.05)  # the next lookup; the loop is what is being measured
                counts["seconds to the answer"] = round(loop.time() - started, 1)
                await posting
                await router.idle()
                await adapter.stop()
                texts = bot_texts(slack, mention["ts"])
                counts["notes"] = sum(t == "I could not read slow.pdf (it took over 1 s to read)." for t in texts)
                counts["answers"] = sum(t == "42, and the PDF could not be read." for t in texts)
    return counts


async def r4_inputs(llm: FakeLLM) -> list[Result]:
    cases, crashes, answered = await r4_router_inputs(llm)
    slack = await r4_slack_inputs(llm)
    examples, translator_crashes = r4_hypothesis()
    looping = await r4_looping(llm)
    pdf = await r4_hostile_pdf(llm)
    return [
        Result(
            "R4",
            "odd messages: 100 KB, empty, attachment-only, NUL, RTL/zero-width, bad surrogates, open fence",
            f"{cases} cases, {crashes} crashes, {answered} answered",
            "-",
            "-",
            "no crash, all answered",
            crashes == 0 and answered == cases,
        ),
        Result(
            "R4",
            "Slack HTTP: non-UTF-8, bad JSON, bad form, missing fields, bad signature, unknown buttons, "
            "malformed file entries",
            ", ".join(f"{k} {v}" for k, v in slack.items()),
            "-",
            "-",
            "no 5xx, 401 for forgeries, real ones logged (3)",
            slack["5xx"] == 0 and slack["401 for bad signatures"] == 1 and slack["logged"] == 3,
        ),
        Result(
            "R4",
            "hypothesis-generated Slack payloads (and files fields) through the translators",
            f"{examples} examples, {translator_crashes} unexpected exceptions",
            "-",
            "-",
            "0",
            translator_crashes == 0,
        ),
        Result(
            "R4",
            f"a model answer that loops (one paragraph over and over until the client leaves), {LOOP_TRIALS} times",
            ", ".join(f"{k} {v}" for k, v in looping.items()),
            "-",
            "-",
            "every answer cut with the note, every stream closed, < 10,000 chars sent",
            looping["cut with the note"] == looping["streams closed"] == LOOP_TRIALS
            and looping["chars sent by the model (most)"] < 10_000,
        ),
        Result(
            "R4",
            "hostile PDF (a few KB that take pypdf minutes) beside a text file, over Slack HTTP, "
            f"ATTACHMENT_READ_BUDGET_S={READ_BUDGET_S:g}",
            f"note {pdf['notes']}, answer {pdf['answers']}, {pdf['seconds to the answer']} s to the answer, "
            f"DNS lookups answered within {DNS_ANSWER_S:g} s: {pdf['answered']} of {pdf['lookups']}",
            "-",
            "-",
            f"1 note, 1 answer within {READ_BUDGET_S + 2:g} s (budget + starting workers), every lookup answered",
            pdf["notes"] == 1
            and pdf["answers"] == 1
            and pdf["seconds to the answer"] < READ_BUDGET_S + 2
            and pdf["answered"] == pdf["lookups"] > 0,
        ),
    ]


async def run() -> list[Result]:
    async with FakeLLM() as llm:
        return await r4_inputs(llm)


if __name__ == "__main__":
    for result in asyncio.run(run()):
        print(result.row())
