"""Cutting long text for Slack: one function (`split_mrkdwn`) splits it into chunks that each
stand whole: at line ends, never inside a link, a mention, a channel or a date token, never
leaving a code block open; and nothing is lost. The batched milestones and the final report use
it: a 300-table report arrives whole, in as many messages as it takes."""

from __future__ import annotations

import random
import re

import pytest

from swapbot.slack import blocks as B
from swapbot.slack.blocks.text import _split
from swapbot.swap.events import Event
from swapbot.testing.rehearsal import said
from swapbot.testing.standin import SlackStandIn
from tests.test_slack_blocks import valid
from tests.test_slack_notifier import SWAP, Clock, publish, replies, setup

SEQUENCE = re.compile(r"<[^<>]*>")


def a_line(rnd: random.Random, path: int = 300) -> str:
    """A line of rendered mrkdwn: words, links (their path up to `path` long), mentions,
    channels, date tokens, entities, inline code; now and then very long, or empty."""
    fmt = "{time_secs}" if path > 10 else "{time}"
    choices = [
        "word",
        "a&amp;b",
        "&lt;x&gt;",
        "<@U0APPROVER>",
        "<#C0SWAP>",
        f"<!date^1700000133^{fmt}|22:15:33 UTC>",
        "`inline code span`",
    ]
    words = []
    for _ in range(rnd.choice([0, 1, 3, 8, 20, 60, 400])):
        word = rnd.choice([*choices, "link", "run"])
        if word == "link":
            word = f"<https://x.test/{'p' * rnd.randint(0, path)}?a=1&amp;b=2|a link label>"
        elif word == "run":
            word = "x" * rnd.randint(1, 120)
        words.append(word)
    return " ".join(words)


def a_text(rnd: random.Random, path: int = 300) -> str:
    """Many lines, some of them in ``` blocks (balanced, as the renderers make them)."""
    lines = []
    for _ in range(rnd.randint(1, 300)):
        if rnd.random() < 0.05:
            lines += ["```", *(a_line(rnd, path) for _ in range(rnd.randint(0, 40))), "```"]
        else:
            lines.append(a_line(rnd, path))
    return "\n".join(lines)


def balanced(chunk: str) -> bool:
    """No `<` without its `>` (nor the reverse), and no ``` left open."""
    outside = SEQUENCE.sub("", chunk)
    return "<" not in outside and ">" not in outside and chunk.count("```") % 2 == 0


@pytest.mark.parametrize("seed", range(60))
def test_chunks_are_whole_and_lose_nothing(seed):
    """Any text (its <…> sequences shorter than a chunk, as swapbot's are), any limit."""
    rnd = random.Random(seed)
    small = seed % 3 == 0
    text = a_text(rnd, path=10 if small else 300)
    limit = rnd.choice([60, 100] if small else [400, 1000, 3000])
    parts = _split(text, limit)
    assert "".join(body for _, body, _ in parts) == text  # nothing lost, nothing added
    chunks = B.split_mrkdwn(text, limit)
    assert chunks == [head + body + tail for head, body, tail in parts]
    sequences = SEQUENCE.findall(text)
    shown = [s for chunk in chunks for s in SEQUENCE.findall(chunk)]
    assert shown == sequences  # every link, mention and date token whole, in order
    for chunk in chunks:
        assert 0 < len(chunk) <= limit
        assert balanced(chunk), chunk


@pytest.mark.parametrize("seed", range(20))
def test_chunks_cut_at_line_ends_when_lines_fit(seed):
    rnd = random.Random(seed)
    lines = [a_line(rnd)[:150] for _ in range(200)]
    lines = [SEQUENCE.sub("<@U0X>", line) for line in lines]  # no sequence cut by the [:150]
    for _, body, _ in _split("\n".join(lines), 1000):
        assert body.endswith("\n") or body == "\n".join(lines)[-len(body) :]


def test_a_code_block_is_closed_at_a_cut_and_opened_again():
    text = "before\n```\n" + "\n".join(f"line {i}" for i in range(100)) + "\n```\nafter"
    chunks = B.split_mrkdwn(text, 200)
    assert len(chunks) > 3
    assert chunks[0].startswith("before\n```\n") and chunks[0].endswith("\n```")
    for chunk in chunks[1:-1]:
        assert chunk.startswith("```\nline ") and chunk.endswith("\n```"), chunk
    assert chunks[-1].endswith("```\nafter")


def test_a_line_longer_than_a_chunk_is_cut_at_a_space_outside_any_sequence():
    link = "<https://x.test/a b|two words>"  # a space inside: no cut there
    text = " ".join([link] * 50)
    chunks = B.split_mrkdwn(text, 100)
    for chunk in chunks:
        assert chunk.strip().replace(link, "").strip() == "", chunk
    assert "".join(chunks) == text


def test_a_sequence_longer_than_a_chunk_is_shown_as_text():
    long = "<https://x.test/" + "a" * 500 + "|label>"
    chunks = B.split_mrkdwn("see " + long, 100)
    assert all(len(c) <= 100 and balanced(c) for c in chunks)
    assert "".join(chunks) == "see " + long.replace("<", "&lt;").replace(">", "&gt;")


def test_a_cut_short_text_keeps_its_sequences_whole():
    text = "approved by <@U0APPROVER> at <!date^1700000133^{time}|2023-11-14 22:15 UTC> — ok"
    for limit in range(5, len(text)):
        cut = B._cut_mrkdwn(text, limit)
        assert len(cut) <= limit and cut.endswith("…")
        assert balanced(cut), cut
    assert B._cut_mrkdwn("```\n" + "x " * 100 + "\n```", 50).endswith("…```")


# -- where swapbot cuts text ------------------------------------------------------------------
def test_batched_milestones_are_never_cut_inside_a_link(redis_prefix):
    """The issue: a batch of milestones cut at exactly 3,000 characters split a link. The
    batch goes in as many replies as it takes, each cut between two milestones."""
    with SlackStandIn() as slack:
        store, notifier = setup(redis_prefix, slack, Clock())
        for i in range(60):
            publish(
                store,
                "step.waiting",
                step="authorize",
                message=f"open the link {i} and log in",
                data={"person": "U0PERSON", "link": f"https://x.test/{i}/" + "a" * 80},
            )
        notifier.pump()
        texts = [m.text or "" for m in replies(slack)]
        assert len(texts) > 1
        for text in texts:
            assert len(text) <= 3000 and balanced(text), text
        joined = "\n".join(texts)
        for i in range(60):
            assert f"<https://x.test/{i}/{'a' * 80}|open the link>" in joined
        assert not slack.violations


def report_records(store, n: int) -> None:
    lease = store.acquire(SWAP, "runner", 10_000)
    tables = [
        {
            "table": f"salesforce.custom_object_{i:03}__c",
            "rows_old": 1000 + i,
            "rows_new": 1000 + i,
            "differing_rows": 0,
            "only_in_new": ["rating__c"],
        }
        for i in range(n)
    ]
    store.put_record(lease, "parity", {"equal": True, "compared_at": 1.0, "tables": tables})
    store.put_record(lease, "swap_done_at", 2.0)
    store.release(lease)


def test_a_300_table_report_arrives_whole(redis_prefix):
    """The issue: the final report ended "… 274 more lines not shown". It now comes in as many
    thread replies as it takes, each within Slack's limits, and every table is in it."""
    with SlackStandIn() as slack:
        store, notifier = setup(redis_prefix, slack, Clock())
        report_records(store, 300)
        publish(store, "swap.done", message="every step is done")
        notifier.pump()
        parts = [m for m in replies(slack) if "the report of swap" in said(m) or "part " in said(m)]
        assert len(parts) > 1
        shown = "\n".join(said(m) for m in parts)
        for i in range(300):
            assert f"salesforce.custom_object_{i:03}__c" in shown, i
        assert "not shown" not in shown
        assert f"part {len(parts)} of {len(parts)}" in said(parts[-1])
        for m in parts:
            valid((m.text or "", m.blocks or []))
        assert not slack.violations

        # a notifier that restarts after the report told it goes on, not over
        again = setup(redis_prefix, slack, Clock())[1]
        store.redis.delete(store.swap_key(SWAP, "slack", "cursor"))
        again.pump()
        assert len([m for m in replies(slack) if "part 1 of" in said(m)]) == 1


def test_reply_pages_hold_every_line():
    lines = [f"{i:05} & <b> ```" + "x" * 80 for i in range(3000)]
    pages = B.reply_pages({"command": "/hcswap history", "text": "\n".join(lines)})
    assert len(pages) > 5
    body = "\n".join(t for _, blks in pages for t in B._texts(blks))
    for i in range(3000):
        assert f"{i:05} &amp; &lt;b&gt;" in body
    for k, (text, blks) in enumerate(pages, 1):
        valid((text, blks))
        assert blks[-1]["elements"][0]["text"].startswith(f"part {k} of {len(pages)}")


def test_an_event_of_many_lines_is_one_milestone_line():
    ev = Event(kind="notice", swap_id="s", message="a\n" * 5000)
    line = B.milestone(ev)
    assert "\n" not in line and len(line) <= 2900
