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


# -- the new schema as it was before prep, so a rollback puts back exactly that ---------------
_Q_ACLS = """
SELECT c.relname::text, a.privilege_type::text, a.is_grantable,
       CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee)::text END AS grantee
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL aclexplode(c.relacl) a
WHERE n.nspname = %s AND c.relname = ANY(%s) AND a.grantee <> c.relowner
ORDER BY 1, 4, 2
"""
_Q_SCHEMA_ACL = """
SELECT a.privilege_type::text, a.is_grantable,
       CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee)::text END AS grantee
FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
WHERE n.nspname = %s AND a.grantee <> n.nspowner
ORDER BY 3, 1
"""
_Q_COMMENTS = """
SELECT c.relname::text, obj_description(c.oid, 'pg_class')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = ANY(%s)
"""


def snapshot(conn: psycopg.Connection, schema: str, tables: list[str]) -> dict:
    """Grants on the schema and its tables, and the tables' comments, as data to keep."""
    check_identifier(schema, "schema")
    return {
        "schema": schema,
        "tables": list(tables),
        "acl": [list(r) for r in conn.execute(_Q_ACLS, (schema, tables)).fetchall()],
        "schema_acl": [list(r) for r in conn.execute(_Q_SCHEMA_ACL, (schema,)).fetchall()],
        "comments": {t: c for t, c in conn.execute(_Q_COMMENTS, (schema, tables)).fetchall()},
    }


def _grantee(name: str | None) -> sql.Composable:
    return sql.SQL("PUBLIC") if name is None else sql.Identifier(name)


def restore(conn: psycopg.Connection, snap: dict) -> None:
    """Make the schema's and tables' grants and comments what `snapshot` saw, in one transaction."""
    schema, tables = snap["schema"], snap["tables"]
    now = snapshot(conn, schema, tables)
    with conn.transaction():
        for table in tables:
            if (
                conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{table}"',)).fetchone()[0]
                is None
            ):
                continue
            ident = sql.Identifier(schema, table)
            _put_back(
                conn,
                sql.SQL("TABLE {}").format(ident),
                {g for t, _, _, g in now["acl"] if t == table},
                [(p, grantable, g) for t, p, grantable, g in snap["acl"] if t == table],
            )
            comment = snap["comments"].get(table)
            conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(ident, sql.Literal(comment)))
        _put_back(
            conn,
            sql.SQL("SCHEMA {}").format(sql.Identifier(schema)),
            {g for _, _, g in now["schema_acl"]},
            snap["schema_acl"],
        )


def _put_back(
    conn: psycopg.Connection,
    on: sql.Composable,
    holders: set[str | None],
    grants: list,
) -> None:
    """Make `on`'s ACL (`TABLE t` or `SCHEMA s`) hold exactly `grants` (privilege, grantable,
    grantee): everything is revoked from who holds something now, then the grants are made."""
    for grantee in holders:
        conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(on, _grantee(grantee)))
    for privilege, grantable, grantee in grants:
        conn.execute(
            sql.SQL("GRANT {} ON {} TO {}{}").format(
                sql.SQL(privilege),
                on,
                _grantee(grantee),
                sql.SQL(" WITH GRANT OPTION" if grantable else ""),
            )
        )
