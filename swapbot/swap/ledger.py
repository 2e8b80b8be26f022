"""After the point of no return: what remains for people, each with an owner, until marked done.

Computed from the live system every time (so it cannot drift), and marked done by a person. An
item that is `blocking` (a check of Heroku Connect's own diagnosis of hc2 failed as an error at
verify; read from verify's record, not asked again) says the swap is not finished until a
person has fixed it and marked it done.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from swapbot.heroku._models import DiagnosedFailure
    from swapbot.swap.engine import Engine
    from swapbot.swap.live import Live
    from swapbot.swap.plan import Plan

_Q_READERS = """
SELECT DISTINCT g.grantee::text, g.table_name::text
FROM information_schema.role_table_grants g
WHERE g.table_schema = %(old)s AND g.table_name = ANY(%(tables)s) AND g.privilege_type = 'SELECT'
  AND g.grantee <> ALL(%(skip)s)
  AND NOT EXISTS (SELECT 1 FROM information_schema.role_table_grants n
                  WHERE n.table_schema = %(new)s AND n.table_name = g.table_name
                    AND n.grantee = g.grantee AND n.privilege_type = 'SELECT')
ORDER BY 1, 2
"""


class Item(BaseModel):
    key: str
    what: str
    owner: str
    done_by: str | None = None
    blocking: bool = False  # the swap is not finished until it is marked done

    @property
    def done(self) -> bool:
        return self.done_by is not None


def items(engine: Engine, plan: Plan, live: Live) -> list[Item]:
    owner = plan.created_by or plan.authorizer or "the operator"
    found: list[Item] = []
    with live.db(autocommit=True) as conn:
        left = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)",
                (plan.old_schema, plan.tables),
            )
        ]
        for table in left:
            found.append(
                Item(
                    key=f"leftover:{table}",
                    what=f"{plan.old_schema}.{table} is no longer synced: drop it once nothing reads it",
                    owner=owner,
                )
            )
        row = conn.execute("SELECT current_user").fetchone()
        assert row is not None  # a SELECT without FROM returns one row
        owner_role = row[0]
        skip = [owner_role, "PUBLIC", *plan.roles]
        params: dict[str, Any] = {
            "old": plan.old_schema,
            "new": plan.new_schema,
            "tables": plan.tables,
            "skip": skip,
        }
        for grantee, table in conn.execute(_Q_READERS, params):
            found.append(
                Item(
                    key=f"grant:{grantee}:{table}",
                    what=f"{grantee} could read {plan.old_schema}.{table} but not {plan.new_schema}.{table} "
                    "(a read-only credential or dataclip?): grant it, or confirm it is not needed",
                    owner=owner,
                )
            )
    odata = (live.old().model_extra or {}).get("odata")
    if odata:
        found.append(
            Item(
                key="external-objects",
                what=f"re-point Heroku External Objects of {', '.join(plan.tables)} to {plan.new_schema}",
                owner=plan.authorizer or owner,
            )
        )
    found += _diagnosed(engine, plan, plan.authorizer or owner)
    for s in engine.store.get_record(plan.swap_id, "reader_sessions") or []:
        found.append(
            Item(
                key=f"reader:{s['pid']}",
                what=f"a session of {s['role']} ({s.get('application_name') or '-'} from "
                f"{s.get('client_addr') or 'local'}, since {s['backend_start']}) logged in before "
                f"the switch: it reads {plan.old_schema}'s copies until it reconnects (the bot "
                "does not end readers' sessions)",
                owner=owner,
            )
        )
    for item in found:
        confirmed = engine.store.confirmation(plan.swap_id, f"ledger:{item.key}")
        item.done_by = confirmed["by"] if confirmed else None
    return found


def diagnose_key(failure: DiagnosedFailure) -> str:
    """The ledger's key of a failed check of hc2: `diagnose:OBJECT:RULE` (`connection` for a
    check of the whole connection; the check's name where HC gives no rule id)."""
    where = failure.object_name or "connection"
    rule = failure.check.rule_id or failure.check.display_name
    return "diagnose:" + ":".join(re.sub(r"\s+", "-", p.strip()).lower() for p in (where, rule))


def _diagnosed(engine: Engine, plan: Plan, owner: str) -> list[Item]:
    """hc2's checks that Heroku Connect's own diagnosis failed as errors when verify asked
    (recorded then, not asked again here: a diagnosis is a POST and a wait, and `status` reads
    the ledger every few seconds). Each blocks the swap's end until marked done."""
    from swapbot.swap.steps.prep import diagnosed_failures

    record = engine.store.get_record(plan.swap_id, "diagnose_new")
    if not record or record.get("error"):
        return []
    items: dict[str, Item] = {}
    for failure in diagnosed_failures(record):
        key = diagnose_key(failure)
        if failure.level != "error" or key in items:
            continue
        doc = f" ({failure.check.doc_url})" if failure.check.doc_url else ""
        items[key] = Item(
            key=key,
            what=f"{plan.new_addon} diagnose: {failure.describe()}{doc}: a check of Heroku "
            f"Connect's own failed as an error at verify; fix it, then `ledger done {key}` "
            "(blocking: the swap is not finished until then)",
            owner=owner,
            blocking=True,
        )
    return list(items.values())
