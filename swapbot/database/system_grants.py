"""Grants on Heroku Connect's own tables, carried from OLD to NEW.

HC's triggers run as the writing session's role: an app role that writes to a mapped table
must also be allowed to insert into the schema's `_trigger_log` and use its sequence. When the
app has a role of its own (not the credential HC was given), its grants on OLD's system tables
must exist on NEW's before the switch, or every app write fails with "permission denied for
sequence _trigger_log_id_seq". The inventory leaves HC's objects alone, so this is separate.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from swapbot.database._common import check_identifier

SYSTEM_RELATIONS = (
    "_trigger_log",
    "_trigger_log_id_seq",
    "_trigger_log_archive",
    "_hcmeta",
    "_sf_event_log",
)

_Q_GRANTS = """
SELECT c.relname::text AS relname, c.relkind::text AS relkind, g.rolname::text AS grantee,
       string_agg(DISTINCT a.privilege_type, ', ' ORDER BY a.privilege_type) AS privileges
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL aclexplode(c.relacl) a
JOIN pg_roles g ON g.oid = a.grantee
WHERE n.nspname = %s AND c.relname = ANY(%s) AND a.grantee <> c.relowner
GROUP BY 1, 2, 3
ORDER BY 1, 3
"""


def statements(conn: psycopg.Connection, old: str, new: str) -> list[sql.Composed]:
    """The GRANTs that give each role on NEW's system tables what it has on OLD's."""
    check_identifier(old, "schema")
    check_identifier(new, "new schema")
    out = []
    for r in conn.execute(_Q_GRANTS, (old, list(SYSTEM_RELATIONS))).fetchall():
        relname, relkind, grantee, privileges = r
        target = conn.execute("SELECT to_regclass(%s)", (f'"{new}"."{relname}"',)).fetchone()[0]
        if target is None:
            continue
        kind = sql.SQL("SEQUENCE" if relkind == "S" else "TABLE")
        privs = sql.SQL(", ").join(sql.SQL(p.strip()) for p in privileges.split(","))
        out.append(
            sql.SQL("GRANT {} ON {} {} TO {}").format(
                privs, kind, sql.Identifier(new, relname), sql.Identifier(grantee)
            )
        )
    return out


def carry(conn: psycopg.Connection, old: str, new: str) -> list[str]:
    """Apply them in one transaction; return the statements as text (for the audit trail)."""
    done = []
    with conn.transaction():
        for stmt in statements(conn, old, new):
            conn.execute(stmt)
            done.append(stmt.as_string(conn))
    return done
