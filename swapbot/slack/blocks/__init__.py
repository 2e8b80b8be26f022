"""Block Kit rendering for the Slack front end: pure functions from plain dicts to messages.

Every renderer returns `(text, blocks)`: `text` is the short fallback Slack shows in
notifications (send it without `link_names`), `blocks` a list of plain dicts ready for
chat.postMessage / chat.update. Nothing here does I/O; the clock is read only when no `now`
is given.

Safety: text from people and outside systems must never ping or link.
- every string that comes from a person or an outside system goes through `escape` (Slack's
  control characters, https://api.slack.com/reference/surfaces/formatting#escaping) and sits
  in a mrkdwn text object with `verbatim: True`, so `<!channel>`, `@here`, `#chan` and URLs
  stay plain text;
- mentions we make ourselves use the ID form `<@U123>`, and only for values shaped like a Slack
  user id (`mention`); anything else is shown as an escaped name;
- credentials inside URLs are masked before anything is rendered.

Slack's limits (https://api.slack.com/reference/block-kit/blocks) hold by construction: names
are cut, long lists are summarised under a character budget, and every block passes through a
last guard. `check_limits` verifies a message; the tests run it on every output.

Times are Slack date tokens (`date_token`), which each reader sees in their own zone and which
never go stale; a person named in a message is a mention (`name_people`). Long text is cut into
chunks by one function (`split_mrkdwn`), which never cuts inside a link, a mention, a date token
or a code block without closing it.

Modules: `text` (escaping, numbers, times, people, chunks), `kit` (limits, block builders,
the guard), `rows` (mapping and load listings), `status` (status card, progress), `card` (the
swap's live card and its buttons), `approvals`, `milestones`, `replies` (command answers),
`plan_form` (the plan as a modal), `home` (the App Home tab).
"""

# `name as name` re-exports a name beyond __all__: whatever the module offered stays importable
# from the package (the notifier and the tests use a few private helpers).
from swapbot.slack.blocks import plan_form as plan_form
from swapbot.slack.blocks.approvals import DEFAULT_EMOJI as DEFAULT_EMOJI
from swapbot.slack.blocks.approvals import approval_decided, approval_message
from swapbot.slack.blocks.kit import MAX_BLOCK_ID as MAX_BLOCK_ID
from swapbot.slack.blocks.kit import MAX_BLOCKS, MAX_FALLBACK, MAX_TOTAL_TEXT, check_limits, chunks
from swapbot.slack.blocks.kit import MAX_CONTEXT_ELEMENTS as MAX_CONTEXT_ELEMENTS
from swapbot.slack.blocks.kit import MAX_FIELD_TEXT as MAX_FIELD_TEXT
from swapbot.slack.blocks.kit import MAX_FIELDS as MAX_FIELDS
from swapbot.slack.blocks.kit import MAX_HEADER_TEXT as MAX_HEADER_TEXT
from swapbot.slack.blocks.kit import MAX_SECTION_TEXT as MAX_SECTION_TEXT
from swapbot.slack.blocks.kit import Block as Block
from swapbot.slack.blocks.kit import Rendered as Rendered
from swapbot.slack.blocks.kit import _finish as _finish
from swapbot.slack.blocks.kit import _section as _section
from swapbot.slack.blocks.kit import _texts as _texts
from swapbot.slack.blocks.milestones import is_broadcast, milestone, milestone_message
from swapbot.slack.blocks.replies import refusal, reply, reply_pages, usage
from swapbot.slack.blocks.status import DETAIL_HINT as DETAIL_HINT
from swapbot.slack.blocks.status import progress_message, status_message
from swapbot.slack.blocks.text import _cut_mrkdwn as _cut_mrkdwn
from swapbot.slack.blocks.text import (
    bar,
    date_token,
    duration,
    escape,
    mention,
    name_people,
    split_mrkdwn,
)

__all__ = [
    "MAX_BLOCKS",
    "MAX_FALLBACK",
    "MAX_TOTAL_TEXT",
    "approval_decided",
    "approval_message",
    "bar",
    "check_limits",
    "chunks",
    "date_token",
    "duration",
    "escape",
    "is_broadcast",
    "mention",
    "milestone",
    "milestone_message",
    "name_people",
    "progress_message",
    "refusal",
    "reply",
    "reply_pages",
    "split_mrkdwn",
    "status_message",
    "usage",
]
