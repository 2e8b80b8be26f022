"""Dropping the schema a swap created (hc2's, on `rollback --remove-addon`), and nothing else.

`DROP SCHEMA … CASCADE` also drops whatever *outside* the schema depends on it: a view in
`public`, a foreign key from an app table, a function taking one of its row types. Those are
someone's work, so they are looked up first (`pg_depend`) and the drop is refused while any
exist; the caller names them to a person.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from swapbot.database._common import UserError, check_identifier, schema_exists

# Objects outside the schema that depend on a table, view, sequence, type or function inside it.
# A rule (a view's body), a trigger, a column default and a policy have no schema of their own:
# theirs is their table's. Anything else without one counts as outside (refuse, to be safe).
_OUTSIDE = """
WITH inside AS (
    SELECT 'pg_class'::regclass AS classid, oid AS objid FROM pg_class
     WHERE relnamespace = %(ns)s
    UNION ALL
    SELECT 'pg_type'::regclass, oid FROM pg_type WHERE typnamespace = %(ns)s
    UNION ALL
    SELECT 'pg_proc'::regclass, oid FROM pg_proc WHERE pronamespace = %(ns)s
)
SELECT DISTINCT
       CASE WHEN d.classid = 'pg_rewrite'::regclass THEN
              (SELECT CASE WHEN r.rulename = '_RETURN' THEN 'view ' ELSE 'rule on ' END
                      || quote_ident(n.nspname) || '.' || quote_ident(c.relname)
                 FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE r.oid = d.objid)
            ELSE o.type || ' ' || o.identity
       END
  FROM pg_depend d
  JOIN inside i ON d.refclassid = i.classid AND d.refobjid = i.objid
 CROSS JOIN LATERAL pg_identify_object(d.classid, d.objid, d.objsubid) o
  -- the table of a rule, trigger, column default or policy
  LEFT JOIN LATERAL (
           SELECT ev_class FROM pg_rewrite WHERE d.classid = 'pg_rewrite'::regclass AND oid = d.objid
 UNION ALL SELECT tgrelid FROM pg_trigger WHERE d.classid = 'pg_trigger'::regclass AND oid = d.objid
 UNION ALL SELECT adrelid FROM pg_attrdef WHERE d.classid = 'pg_attrdef'::regclass AND oid = d.objid
 UNION ALL SELECT polrelid FROM pg_policy WHERE d.classid = 'pg_policy'::regclass AND oid = d.objid
       ) own(relid) ON true
  LEFT JOIN pg_class oc ON oc.oid = own.relid
 WHERE d.deptype IN ('n', 'a')
   AND COALESCE(oc.relnamespace, to_regnamespace(quote_ident(o.schema))) IS DISTINCT FROM %(ns)s
 ORDER BY 1
"""


class SchemaInUse(UserError):
    """Something outside the schema depends on it: nothing was dropped."""

    def __init__(self, schema: str, outside: list[str]):
        self.schema, self.outside = schema, outside
        super().__init__(f"objects outside {schema} depend on it: {listed(outside)}")


def listed(names: list[str], most: int = 10) -> str:
    """`a, b, c and 7 more`: names for a message, however many there are."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def outside_dependents(conn: psycopg.Connection, schema: str) -> list[str]:
    """What outside `schema` a `DROP SCHEMA … CASCADE` would take with it."""
    check_identifier(schema, "schema")
    if not schema_exists(conn, schema):
        return []
    ns = conn.execute("SELECT %s::regnamespace::oid", (schema,)).fetchone()[0]
    return [row[0] for row in conn.execute(_OUTSIDE, {"ns": ns}).fetchall()]


def tables(conn: psycopg.Connection, schema: str) -> list[str]:
    """The schema's tables, by name (what the drop removes, for the message and the audit)."""
    if not schema_exists(conn, schema):
        return []
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = %s::regnamespace "
        "AND c.relkind IN ('r', 'p') ORDER BY 1",
        (schema,),
    ).fetchall()
    return [r[0] for r in rows]


def drop(conn: psycopg.Connection, schema: str) -> None:
    """Drop `schema` and everything in it, in one transaction that first proves nothing outside
    depends on it. A schema already gone is already dropped."""
    check_identifier(schema, "schema")
    with conn.transaction():
        if not schema_exists(conn, schema):
            return
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('swapbot:dropschema:' || %s))", (schema,)
        )
        outside = outside_dependents(conn, schema)
        if outside:
            raise SchemaInUse(schema, outside)
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
