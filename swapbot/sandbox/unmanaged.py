"""Objects Heroku Connect does not manage, planted on the demo tables so a swap has to move them.

Each kind binds to the mapped tables differently (by OID, by name at run time, by constraint,
by grant), which is what the swap's inventory and re-targeting must cope with. Nothing here
writes to a mapped table.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from swapbot.database.hc_layout import mapped_tables
from swapbot.sandbox.hcschema import check_name

REPORTING_SCHEMA = "reporting"


def _ensure_role(conn: psycopg.Connection, role: str, *, login: bool) -> bool:
    """Create ``role`` unless it exists; return whether it was created."""
    exists = conn.execute(
        "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (check_name(role),)
    ).fetchone()
    if exists:
        return False
    conn.execute(
        sql.SQL("CREATE ROLE {} {}").format(
            sql.Identifier(role), sql.SQL("LOGIN" if login else "NOLOGIN")
        )
    )
    return True


def demo_objects(
    conn: psycopg.Connection, *, schema: str, app_role: str, readonly_role: str
) -> list[str]:
    """Create the demo's unmanaged objects on the mapped tables in ``schema``; describe each.

    Idempotent. Expects the demo tables (account, contact, opportunity, "case") to exist.
    """
    s = check_name(schema)
    r = REPORTING_SCHEMA

    def table(name: str) -> sql.Identifier:
        return sql.Identifier(s, name)

    created: list[str] = []
    for role, login in ((app_role, True), (readonly_role, False)):
        made = _ensure_role(conn, role, login=login)
        created.append(
            f"role {role} ({'LOGIN' if login else 'NOLOGIN'}){'' if made else ', existed'}"
        )

    conn.execute(
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS account_billingcity_idx ON {} (lower(billingcity))"
        ).format(table("account"))
    )
    created.append(f"index {s}.account_billingcity_idx on account (lower(billingcity))")

    conn.execute(
        sql.SQL(
            """CREATE OR REPLACE VIEW {view} AS
            SELECT a.sfid AS account_sfid, a.name AS account_name,
                   c.sfid AS contact_sfid, c.firstname, c.lastname, c.email
            FROM {account} a JOIN {contact} c ON c.accountid = a.sfid"""
        ).format(view=table("account_contacts"), account=table("account"), contact=table("contact"))
    )
    created.append(f"view {s}.account_contacts joining account and contact")

    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(r)))
    conn.execute(
        sql.SQL(
            """CREATE OR REPLACE VIEW {view} AS
            SELECT o.sfid, o.name, o.stagename, o.amount, o.closedate,
                   a.name AS account_name
            FROM {opportunity} o LEFT JOIN {account} a ON a.sfid = o.accountid
            WHERE o.stagename NOT IN ('Closed Won', 'Closed Lost')"""
        ).format(
            view=sql.Identifier(r, "open_opportunities"),
            opportunity=table("opportunity"),
            account=table("account"),
        )
    )
    created.append(f"view {r}.open_opportunities on {s}.opportunity and {s}.account")

    # plpgsql: "contact" is resolved at run time through the caller's search_path.
    conn.execute(
        """CREATE OR REPLACE FUNCTION public.contact_count(account_sfid text) RETURNS bigint
        LANGUAGE plpgsql STABLE AS $$
        BEGIN
            RETURN (SELECT count(*) FROM contact WHERE contact.accountid = account_sfid);
        END;
        $$"""
    )
    created.append("function public.contact_count(text), plpgsql naming contact unqualified")

    # SQL-standard body: parsed at creation, bound to this schema's account by OID.
    conn.execute(
        sql.SQL(
            """CREATE OR REPLACE FUNCTION public.account_display_name(p_sfid text) RETURNS text
            LANGUAGE sql STABLE
            BEGIN ATOMIC
                SELECT a.name || coalesce(' (' || a.billingcity || ')', '')
                FROM {account} a WHERE a.sfid = p_sfid;
            END"""
        ).format(account=table("account"))
    )
    created.append(f"function public.account_display_name(text), BEGIN ATOMIC on {s}.account")

    conn.execute(
        """CREATE TABLE IF NOT EXISTS public.contact_activity (
            id serial PRIMARY KEY,
            contact_sfid varchar(18),
            operation text NOT NULL,
            changed_at timestamptz NOT NULL DEFAULT now())"""
    )
    conn.execute(
        """CREATE OR REPLACE FUNCTION public.contact_touch() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO public.contact_activity (contact_sfid, operation)
            VALUES (NEW.sfid, TG_OP);
            RETURN NULL;
        END;
        $$"""
    )
    conn.execute(
        sql.SQL(
            "CREATE OR REPLACE TRIGGER contact_touch AFTER UPDATE ON {} FOR EACH ROW"
            " EXECUTE FUNCTION public.contact_touch()"
        ).format(table("contact"))
    )
    created.append(f"trigger contact_touch on {s}.contact writing public.contact_activity")

    conn.execute(
        sql.SQL(
            """CREATE TABLE IF NOT EXISTS public.app_order (
                id serial PRIMARY KEY,
                account_sfid varchar(18)
                    CONSTRAINT app_order_account_sfid_fkey REFERENCES {account} (sfid),
                amount numeric(12, 2),
                created_at timestamptz NOT NULL DEFAULT now())"""
        ).format(account=table("account"))
    )
    created.append(f"foreign key public.app_order.account_sfid -> {s}.account(sfid)")

    conn.execute(
        sql.SQL(
            """CREATE MATERIALIZED VIEW IF NOT EXISTS {view} AS
            SELECT c.accountid AS account_sfid, c.status, count(*) AS cases
            FROM {case} c GROUP BY c.accountid, c.status"""
        ).format(view=sql.Identifier(r, "case_counts"), case=table("case"))
    )
    created.append(f"materialized view {r}.case_counts on {s}.case")

    grantee = sql.Identifier(check_name(readonly_role))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(s), grantee))
    tables = mapped_tables(conn, s)
    if tables:
        conn.execute(
            sql.SQL("GRANT SELECT ON {} TO {}").format(
                sql.SQL(", ").join(table(t) for t in tables), grantee
            )
        )
    created.append(f"grant USAGE on {s} and SELECT on {', '.join(tables)} to {readonly_role}")
    return created
