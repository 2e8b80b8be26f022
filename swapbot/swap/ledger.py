"""After the point of no return: what remains for people, each with an owner, until marked done.

Computed from the live system every time (so it cannot drift), and marked done by a person.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
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
