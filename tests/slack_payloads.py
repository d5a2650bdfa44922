"""Hypothesis strategies for Slack payloads the bot must survive: R4's drill and the translator tests share them.

``json_values`` is anything a JSON body can hold (floats included: Python's json reads ``Infinity`` and ``NaN``);
``file_entries`` is a message's ``files`` as Slack might send it on a bad day: descriptions whose fields have the
wrong type ("12kb", ``{}``, inf, nan, a negative size), entries that are not descriptions, and no list at all.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
odd_sizes = st.sampled_from(["12kb", "", "-1", "1e3", "9" * 5000, float("inf"), float("nan"), -1, True]) | json_values
urls = (
    st.sampled_from(
        [
            "https://files.slack.com/files-pri/T1-F1/a.txt",
            "http://127.0.0.2:8080/latest/meta-data/",
            "https://docs.google.com/document/d/1",
            "http://[::1",  # not even a URL
            "https://files.slack.com@evil.example/",
            "",
        ]
    )
    | json_values
)
file_descriptions = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "name": json_values,
        "title": json_values,
        "mimetype": st.sampled_from(["text/plain", "image/png"]) | json_values,
        "size": odd_sizes,
        "url_private": urls,
        "url_private_download": urls,
        "is_external": json_values,
        "mode": st.sampled_from(["hosted", "external", "tombstone", "hidden_by_limit"]) | json_values,
    },
)
file_entries = st.lists(file_descriptions | json_values, max_size=4) | json_values
messages_with_files = st.fixed_dictionaries(
    {"type": st.just("message"), "channel": st.just("C1"), "user": st.just("UALICE"), "ts": st.just("1.000001")},
    optional={"files": file_entries, "subtype": st.just("file_share") | json_values, "text": json_values},
)
