"""A database with every kind of object a swap must carry, for the inventory/ddl/verify tests.

OLD is the schema hc1 serves (`salesforce`, five mappings); NEW (`salesforce_v2`) is built the
way hc2's initial load would build it: the changed tables again, with HC's system tables,
triggers and indexes and one extra column each, and rows that differ from OLD's so a test can
see which table a view or function reads. Around them: unmanaged objects of every kind, in
several schemas, some with names that need quoting.

Rows are written as Heroku Connect itself (`hc_session`), so nothing lands in a trigger log.
"""

from __future__ import annotations

import datetime as dt

import psycopg
from psycopg import sql

from swapbot.sandbox import hcschema

OLD = "salesforce"
NEW = "salesforce_v2"
CHANGED = ["account", "contact", "case"]
UNCHANGED = ["opportunity", "invoice__c"]
REPORTING = "reporting"
DEPT = "Reporting Dept"  # a schema name that needs quoting

STAMPS = {"isdeleted": "boolean", "systemmodstamp": "timestamp", "createddate": "timestamp"}
TABLES: dict[str, dict[str, str]] = {
    "account": {
        "name": "varchar(255)",
        "industry": "varchar(255)",
        "annualrevenue": "double precision",
        "billingcity": "varchar(40)",
        "external_key__c": "varchar(40)",
        **STAMPS,
    },
    "contact": {
        "firstname": "varchar(40)",
        "lastname": "varchar(80)",
        "email": "varchar(80)",
        "accountid": "varchar(18)",
        "external_key__c": "varchar(40)",
        **STAMPS,
    },
    "opportunity": {
        "name": "varchar(120)",
        "stagename": "varchar(255)",
        "amount": "double precision",
        "accountid": "varchar(18)",
        **STAMPS,
    },
    "case": {
        "subject": "varchar(255)",
        "status": "varchar(255)",
        "priority": "varchar(255)",
        "accountid": "varchar(18)",
        "contactid": "varchar(18)",
        **STAMPS,
    },
    "invoice__c": {
        "name": "varchar(80)",
        "account__c": "varchar(18)",
        "amount__c": "double precision",
        **STAMPS,
    },
}
INDEXES: dict[str, dict[str, bool]] = {
    "account": {"id": True, "systemmodstamp": False, "external_key__c": True},
    "contact": {"id": True, "systemmodstamp": False, "accountid": False},
    "opportunity": {"id": True, "systemmodstamp": False},
    "case": {"id": True, "systemmodstamp": False},
    "invoice__c": {"id": True, "systemmodstamp": False},
}
# The fields added to the hc2 mappings: NEW's tables have them, OLD's do not.
NEW_COLUMNS = {
    "account": {"rating": "varchar(255)"},
    "contact": {"phone": "varchar(40)"},
    "case": {"origin": "varchar(255)"},
}
# When the fixture's rows were last touched by "Salesforce"; NEW's rows are newer.
OLD_STAMP = dt.datetime(2024, 1, 1, 12, 0)
NEW_STAMP = dt.datetime(2024, 6, 1, 12, 0)


def roles(dbname: str) -> tuple[str, str]:
    """The app's login role and a read-only role, named after the database (dropped with it)."""
    return f"{dbname}_app", f"{dbname}_readonly"


def _hc_schema(conn: psycopg.Connection, schema: str, tables: dict[str, dict[str, str]]) -> None:
    hcschema.create_system_tables(conn, schema, org_id="00D000000000001")
    for table, columns in tables.items():
        hcschema.create_mapped_table(
            conn,
            schema,
            table,
            columns,
            access="read_write",
            indexes=INDEXES[table],
        )


def _rows(conn: psycopg.Connection, schema: str, prefix: str, stamp: dt.datetime) -> None:
    """Three accounts with two contacts each, cases, opportunities and invoices; `prefix`
    ("Old"/"New") marks which copy a value came from."""
    new = schema == NEW

    def insert(table: str, values: dict) -> None:
        conn.execute(
            sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                sql.Identifier(schema, table),
                sql.SQL(", ").join(map(sql.Identifier, values)),
                sql.SQL(", ").join(sql.Placeholder() * len(values)),
            ),
            list(values.values()),
        )

    common = {"isdeleted": False, "systemmodstamp": stamp, "createddate": OLD_STAMP}
    with hcschema.hc_session(conn):
        for a in range(1, 4):
            account = f"001A0000000000{a}AAA"
            insert(
                "account",
                {
                    "sfid": account,
                    "name": f"{prefix} Account {a}",
                    "industry": "Energy",
                    "annualrevenue": 1000.0 * a,
                    "billingcity": f"{prefix} City {a}",
                    "external_key__c": f"ext-{a}",
                    **({"rating": "Hot"} if new else {}),
                    **common,
                },
            )
            for c in range(1, 3):
                insert(
                    "contact",
                    {
                        "sfid": f"003A00000000{a}{c}0AAA",
                        "firstname": f"{prefix} First {a}{c}",
                        "lastname": f"{prefix} Last {a}{c}",
                        "email": f"{prefix.lower()}{a}{c}@example.com",
                        "accountid": account,
                        "external_key__c": f"c-{a}{c}",
                        **({"phone": "555"} if new else {}),
                        **common,
                    },
                )
            insert(
                "case",
                {
                    "sfid": f"500A0000000000{a}AAA",
                    "subject": f"{prefix} Case {a}",
                    "status": "New" if a < 3 or not new else "Working",
                    "priority": "High",
                    "accountid": account,
                    "contactid": f"003A00000000{a}10AAA",
                    **({"origin": "Web"} if new else {}),
                    **common,
                },
            )
            if not new:
                insert(
                    "opportunity",
                    {
                        "sfid": f"006A0000000000{a}AAA",
                        "name": f"Opportunity {a}",
                        "stagename": "Prospecting",
                        "amount": 10.0 * a,
                        "accountid": account,
                        **common,
                    },
                )
                insert(
                    "invoice__c",
                    {
                        "sfid": f"a01A0000000000{a}AAA",
                        "name": f"Invoice {a}",
                        "account__c": account,
                        "amount__c": 5.0 * a,
                        **common,
                    },
                )
        if new:
            # An account only Salesforce (hence NEW) knows yet: shows rows come from NEW.
            insert(
                "account",
                {
                    "sfid": "001A00000000009AAA",
                    "name": "New Account 9",
                    "industry": "Media",
                    "annualrevenue": 9000.0,
                    "billingcity": "New City 9",
                    "external_key__c": "ext-9",
                    "rating": "Cold",
                    **common,
                },
            )


# Every unmanaged object, in creation order. {o} is OLD, {ro} the read-only role, {app} the
# app's role. Each comment says which behaviour of the swap it exercises.
UNMANAGED = """
CREATE SCHEMA reporting;
CREATE SCHEMA "Reporting Dept";
CREATE SCHEMA app;

-- indexes HC did not create: expression, partial, mixed-case name (with a comment)
CREATE INDEX account_billingcity_idx ON {o}.account (lower(billingcity));
CREATE INDEX contact_email_partial_idx ON {o}.contact (email) WHERE email IS NOT NULL;
CREATE INDEX "Contact_Name_Idx" ON {o}.contact (lastname, firstname);
COMMENT ON INDEX {o}.account_billingcity_idx IS 'city search, case-insensitive';

-- constraints, a default and NOT NULL the app added to a mapped table
ALTER TABLE {o}.account ADD CONSTRAINT account_revenue_nonneg CHECK (annualrevenue >= 0);
ALTER TABLE {o}.contact ADD CONSTRAINT contact_email_key UNIQUE (email);
ALTER TABLE {o}.account ALTER COLUMN industry SET DEFAULT 'Unknown';
ALTER TABLE {o}.account ALTER COLUMN name SET NOT NULL;

-- a lookup table for a foreign key out of a changed table into an unchanged one
CREATE TABLE public.priority_level (name varchar(255) PRIMARY KEY);
INSERT INTO public.priority_level VALUES ('High'), ('Medium'), ('Low');

-- foreign keys: changed -> changed, changed -> public, unchanged OLD -> changed, public -> changed
ALTER TABLE {o}.contact ADD CONSTRAINT contact_account_fkey
    FOREIGN KEY (accountid) REFERENCES {o}.account (sfid);
ALTER TABLE {o}."case" ADD CONSTRAINT case_priority_fkey
    FOREIGN KEY (priority) REFERENCES public.priority_level (name);
ALTER TABLE {o}.opportunity ADD CONSTRAINT opportunity_account_fkey
    FOREIGN KEY (accountid) REFERENCES {o}.account (sfid);
CREATE TABLE public.app_order (
    id serial PRIMARY KEY,
    account_sfid varchar(18) CONSTRAINT app_order_account_sfid_fkey REFERENCES {o}.account (sfid),
    amount numeric(12, 2));
CREATE TABLE public.order_log (order_id int, account_name text);

-- a trigger other than HC's, on a changed table
CREATE TABLE public.contact_activity (contact_sfid varchar(18), operation text);
CREATE FUNCTION public.contact_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.contact_activity VALUES (NEW.sfid, TG_OP);
    RETURN NULL;
END $$;
CREATE TRIGGER contact_touch AFTER UPDATE ON {o}.contact
    FOR EACH ROW EXECUTE FUNCTION public.contact_touch();

-- a rule on a changed table, and a rule on another table whose action reads one
CREATE TABLE public.account_audit (sfid varchar(18), name text);
CREATE RULE account_audit_rule AS ON UPDATE TO {o}.account
    DO ALSO INSERT INTO public.account_audit VALUES (NEW.sfid, NEW.name);
CREATE RULE app_order_log AS ON INSERT TO public.app_order
    DO ALSO INSERT INTO public.order_log
        SELECT NEW.id, a.name FROM {o}.account a WHERE a.sfid = NEW.account_sfid;

-- views in OLD: joining two changed tables; joining a changed and an unchanged one;
-- on unchanged tables only (must not be listed)
CREATE VIEW {o}.account_contacts WITH (security_barrier = true) AS
    SELECT a.sfid AS account_sfid, a.name AS account_name, c.sfid AS contact_sfid, c.email
    FROM {o}.account a JOIN {o}.contact c ON c.accountid = a.sfid;
CREATE VIEW {o}.opportunity_accounts AS
    SELECT o.sfid, o.name, o.amount, a.name AS account_name
    FROM {o}.opportunity o JOIN {o}.account a ON a.sfid = o.accountid;
CREATE VIEW {o}.invoice_totals AS
    SELECT account__c, sum(amount__c) AS total FROM {o}.invoice__c GROUP BY account__c;
COMMENT ON VIEW {o}.account_contacts IS 'accounts with their contacts';

-- a view chain across schemas: OLD view <- reporting view <- "Reporting Dept" view
CREATE VIEW {o}.big_accounts AS
    SELECT sfid, name, annualrevenue FROM {o}.account WHERE annualrevenue >= 2000;
CREATE VIEW reporting.big_account_names AS SELECT sfid, name FROM {o}.big_accounts;
CREATE VIEW "Reporting Dept"."Account Summary" AS
    SELECT b.name AS "Account Name", count(c.*) AS "Contacts"
    FROM reporting.big_account_names b LEFT JOIN {o}.contact c ON c.accountid = b.sfid
    GROUP BY b.name;
-- a view with no columns and a mixed-case name
CREATE VIEW "Reporting Dept"."AnyAccount" AS SELECT FROM {o}.account LIMIT 1;
-- a view outside OLD joining a changed and an unchanged mapped table
CREATE VIEW reporting.open_opportunities AS
    SELECT o.sfid, o.name, o.amount, a.name AS account_name
    FROM {o}.opportunity o LEFT JOIN {o}.account a ON a.sfid = o.accountid
    WHERE o.stagename NOT IN ('Closed Won', 'Closed Lost');

-- materialized views: in OLD (copied), outside OLD (recreated), outside with a dependent (manual)
CREATE MATERIALIZED VIEW {o}.account_stats AS
    SELECT industry, count(*) AS accounts FROM {o}.account GROUP BY industry;
CREATE UNIQUE INDEX account_stats_industry_idx ON {o}.account_stats (industry);
CREATE MATERIALIZED VIEW reporting.case_counts AS
    SELECT c.accountid AS account_sfid, c.status, count(*) AS cases
    FROM {o}."case" c GROUP BY c.accountid, c.status;
CREATE INDEX case_counts_account_idx ON reporting.case_counts (account_sfid);
COMMENT ON MATERIALIZED VIEW reporting.case_counts IS 'cases per account and status';
CREATE MATERIALIZED VIEW reporting.contact_counts AS
    SELECT accountid, count(*) AS contacts FROM {o}.contact GROUP BY accountid;
CREATE VIEW reporting.contact_counts_top AS
    SELECT accountid FROM reporting.contact_counts WHERE contacts > 1;

-- SQL-standard bodies, bound by OID: in OLD (copied), outside OLD (replaced in place)
CREATE FUNCTION {o}.account_label(p_sfid text) RETURNS text LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT a.name || ' / ' || a.billingcity FROM {o}.account a WHERE a.sfid = p_sfid;
END;
CREATE FUNCTION public.account_display_name(p_sfid text) RETURNS text LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT a.name FROM {o}.account a WHERE a.sfid = p_sfid;
END;
CREATE FUNCTION "Reporting Dept"."ContactCount"(p_account text) RETURNS bigint
    LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT count(*) FROM {o}.contact c WHERE c.accountid = p_account;
END;
COMMENT ON FUNCTION public.account_display_name(text) IS 'display name of an account';

-- bodies resolved at run time: unqualified (follows the switch), pinned search_path,
-- qualified plpgsql, qualified SQL, dynamic SQL
CREATE FUNCTION public.contact_count(p_account text) RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT count(*) FROM contact WHERE contact.accountid = p_account);
END $$;
CREATE FUNCTION public.contact_count_pinned(p_account text) RETURNS bigint
    LANGUAGE plpgsql STABLE SET search_path = {o}, public AS $$
BEGIN
    RETURN (SELECT count(*) FROM contact WHERE contact.accountid = p_account);
END $$;
CREATE FUNCTION app.account_names() RETURNS SETOF text LANGUAGE plpgsql STABLE AS $$
DECLARE
    r {o}.account%ROWTYPE;
BEGIN
    -- reads {o}.account, qualified: bound to OLD until rewritten
    FOR r IN SELECT * FROM salesforce.account ORDER BY name LOOP
        RETURN NEXT r.name;
    END LOOP;
END $$;
CREATE FUNCTION public.case_total() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM {o}."case"
$$;
CREATE FUNCTION public.count_rows(p_table text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM {o}.%I', p_table) INTO n;
    IF p_table = 'account' THEN
        RAISE NOTICE 'counted accounts';
    END IF;
    RETURN n;
END $$;
-- a function whose signature uses a changed table's row type, outside OLD (manual)
CREATE FUNCTION public.account_row(p_sfid text) RETURNS SETOF {o}.account LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT * FROM {o}.account WHERE sfid = p_sfid;
END;

-- a policy on a changed table (with RLS on), and one on another table reading a changed table
ALTER TABLE {o}.account ENABLE ROW LEVEL SECURITY;
CREATE POLICY account_ro_city ON {o}.account FOR SELECT TO {ro}
    USING (billingcity IS NOT NULL);
CREATE POLICY account_app_all ON {o}.account TO {app} USING (true) WITH CHECK (true);
CREATE POLICY app_order_known_account ON public.app_order FOR SELECT TO {ro}
    USING (EXISTS (SELECT 1 FROM {o}.account a WHERE a.sfid = app_order.account_sfid));
CREATE POLICY app_order_app ON public.app_order TO {app} USING (true) WITH CHECK (true);
ALTER TABLE public.app_order ENABLE ROW LEVEL SECURITY;

-- extended statistics in OLD and in public; table storage options
CREATE STATISTICS {o}.account_city_industry (dependencies) ON billingcity, industry
    FROM {o}.account;
CREATE STATISTICS public."Contact Name Stats" (ndistinct) ON firstname, lastname
    FROM {o}.contact;
ALTER TABLE {o}.contact SET (fillfactor = 90);

-- comments on a changed table and a column
COMMENT ON TABLE {o}.account IS 'Salesforce accounts (synced by Heroku Connect)';
COMMENT ON COLUMN {o}.account.billingcity IS 'billing city as entered in Salesforce';

-- publications: a column list, a row filter with a quoted name, a whole schema (manual)
CREATE PUBLICATION swap_pub FOR TABLE {o}.account (id, sfid, name);
CREATE PUBLICATION "Contact Feed" FOR TABLE {o}.contact WHERE (email IS NOT NULL)
    WITH (publish = 'insert');

-- a column of a changed table's row type in another table (manual: not rewritable)
CREATE TABLE public.account_snapshot (taken_at timestamptz, row_data {o}.account);

-- grants: schema, tables, a column, a view, a function; default privileges in OLD
GRANT USAGE ON SCHEMA {o} TO {ro}, {app};
GRANT USAGE ON SCHEMA reporting, "Reporting Dept", app TO {ro}, {app};
GRANT SELECT ON ALL TABLES IN SCHEMA {o} TO {app};
GRANT SELECT ON {o}.account, {o}."case", {o}.account_contacts TO {ro};
GRANT SELECT (sfid, email) ON {o}.contact TO {ro};
GRANT SELECT, INSERT ON public.app_order TO {app};
GRANT USAGE ON SEQUENCE public.app_order_id_seq TO {app};
GRANT SELECT ON ALL TABLES IN SCHEMA reporting, "Reporting Dept" TO {app};
REVOKE EXECUTE ON FUNCTION {o}.account_label(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {o}.account_label(text) TO {app};
ALTER DEFAULT PRIVILEGES IN SCHEMA {o} GRANT SELECT ON TABLES TO {ro};
"""


def build(conn: psycopg.Connection, *, with_new: bool = True) -> None:
    """OLD with its mappings, rows and unmanaged objects; NEW as hc2's load left it."""
    app, ro = roles(conn.info.dbname)
    for role, login in ((app, True), (ro, False)):
        conn.execute(
            sql.SQL("CREATE ROLE {} {}").format(
                sql.Identifier(role), sql.SQL("LOGIN" if login else "NOLOGIN")
            )
        )
    hcschema.install_prerequisites(conn)
    _hc_schema(conn, OLD, TABLES)
    _rows(conn, OLD, "Old", OLD_STAMP)
    script = UNMANAGED.format(
        o=sql.Identifier(OLD).as_string(conn),
        ro=sql.Identifier(ro).as_string(conn),
        app=sql.Identifier(app).as_string(conn),
    )
    conn.execute(script)
    if with_new:
        build_new(conn)


def build_new(conn: psycopg.Connection) -> None:
    """NEW as hc2's initial load creates it: the changed tables, with the new fields."""
    _hc_schema(conn, NEW, {t: {**TABLES[t], **NEW_COLUMNS[t]} for t in CHANGED})
    _rows(conn, NEW, "New", NEW_STAMP)
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(NEW, "account")))


_SNAPSHOT = r"""
SELECT 'relation ' || n.nspname || '.' || c.relname AS what,
       concat_ws(' | ', c.relkind, pg_get_userbyid(c.relowner),
                 coalesce(c.relacl, acldefault('r', c.relowner))::text,
                 c.reloptions::text, c.relrowsecurity, c.relforcerowsecurity, c.relreplident,
                 CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
                 CASE WHEN c.relkind IN ('i', 'I') THEN pg_get_indexdef(c.oid) END,
                 obj_description(c.oid, 'pg_class')) AS definition
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
UNION ALL
SELECT 'column ' || c.oid::regclass::text || '.' || a.attname,
       concat_ws(' | ', a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attacl::text,
                 col_description(c.oid, a.attnum))
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT pg_describe_object('pg_constraint'::regclass, co.oid, 0),
       concat_ws(' | ', pg_get_constraintdef(co.oid), co.convalidated,
                 obj_description(co.oid, 'pg_constraint'))
FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT pg_describe_object('pg_trigger'::regclass, t.oid, 0),
       concat_ws(' | ', pg_get_triggerdef(t.oid), t.tgenabled, obj_description(t.oid, 'pg_trigger'))
FROM pg_trigger t WHERE NOT t.tgisinternal
UNION ALL
SELECT pg_describe_object('pg_rewrite'::regclass, r.oid, 0),
       concat_ws(' | ', pg_get_ruledef(r.oid), r.ev_enabled)
FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT pg_describe_object('pg_policy'::regclass, p.oid, 0),
       concat_ws(' | ', p.polcmd, p.polpermissive, p.polroles::regrole[]::text,
                 pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
FROM pg_policy p
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text,
       concat_ws(' | ', pg_get_functiondef(p.oid),
                 coalesce(p.proacl, acldefault('f', p.proowner))::text,
                 pg_get_userbyid(p.proowner), obj_description(p.oid, 'pg_proc'))
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prokind IN ('f', 'p')
UNION ALL
SELECT pg_describe_object('pg_statistic_ext'::regclass, s.oid, 0),
       concat_ws(' | ', pg_get_statisticsobjdef(s.oid), s.stxstattarget,
                 obj_description(s.oid, 'pg_statistic_ext'))
FROM pg_statistic_ext s
UNION ALL
SELECT 'publication ' || p.pubname || ' ' || pr.prrelid::regclass::text,
       concat_ws(' | ', pr.prattrs::text, pg_get_expr(pr.prqual, pr.prrelid))
FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
UNION ALL
SELECT 'schema ' || n.nspname,
       concat_ws(' | ', coalesce(n.nspacl, acldefault('n', n.nspowner))::text,
                 pg_get_userbyid(n.nspowner))
FROM pg_namespace n WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
UNION ALL
SELECT 'default acl ' || d.defaclrole::regrole::text || ' ' || coalesce(d.defaclnamespace::regnamespace::text, '-')
       || ' ' || d.defaclobjtype::text, d.defaclacl::text
FROM pg_default_acl d
"""


def catalog_definitions(conn: psycopg.Connection) -> dict[str, str]:
    """Every user object's definition, keyed by what it is (not by OID): two snapshots are
    equal when the catalog says the same things, even if objects were dropped and recreated.

    A NULL ACL is shown as the default it stands for: once granted and revoked, PostgreSQL
    keeps the (equal) explicit ACL, and no SQL command turns it back into NULL."""
    with conn.transaction():
        conn.execute("SET LOCAL search_path = pg_catalog")
        rows = conn.execute(_SNAPSHOT).fetchall()
    out: dict[str, str] = {}
    for what, definition in rows:
        assert what not in out, what
        out[what] = definition
    return out


def normalize_views(conn: psycopg.Connection) -> None:
    """Store every user view as PostgreSQL reads back its own definition.

    `pg_get_viewdef` text is not always a fixed point: `x NOT IN ('a', 'b')` prints as
    `x <> ALL ((ARRAY['a'::varchar, 'b'::varchar])::text[])`, which parses to per-element casts.
    Any tool that recreates a view from the catalog (pg_dump too) stores the second form, so a
    test comparing definitions before and after a round trip starts from it.
    """
    with conn.transaction():
        conn.execute("SET LOCAL search_path = pg_catalog")
        views = conn.execute(
            "SELECT c.oid::regclass::text, pg_get_viewdef(c.oid),"
            " coalesce(' WITH (' || array_to_string(c.reloptions, ', ') || ')', '')"
            " FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'v'"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        for name, query, options in views:
            conn.execute(f"CREATE OR REPLACE VIEW {name}{options} AS {query}")
