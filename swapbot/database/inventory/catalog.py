"""The catalog, read in one snapshot with `search_path = pg_catalog`: every query the scan runs.

Queries that read objects of one catalog by OID share one shape, so they are one table of
data (`BY_OID`) and one function (`by_oid`). A comment is read by joining `pg_description`:
`obj_description()` is a SQL function run once per row, and cost more than the rest of a query.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row

from swapbot.database._common import oid_array


@contextmanager
def catalog_snapshot(conn: psycopg.Connection) -> Iterator[None]:
    """Read the catalog in one snapshot with `search_path = pg_catalog`.

    Inside a transaction the caller holds, the setting is local to it and put back afterwards.
    """
    own = conn.info.transaction_status == TransactionStatus.IDLE
    with conn.transaction():
        if own:
            # Reading a view's or rule's definition locks the relations it names: never
            # queue behind someone's DDL for long.
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            conn.execute("SELECT pg_catalog.set_config('lock_timeout', '5s', true)")
        previous = conn.execute(
            "SELECT pg_catalog.current_setting('search_path'),"
            " pg_catalog.set_config('search_path', 'pg_catalog', true)"
        ).fetchone()[0]
        yield
        if not own:
            conn.execute("SELECT pg_catalog.set_config('search_path', %s, true)", (previous,))


def fetch(conn: psycopg.Connection, query: str, params: Any = None) -> list[dict]:
    """The rows of a catalog query, as dicts."""
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute(query, params).fetchall()


def _described(alias: str, catalog: str) -> str:
    return (
        f"LEFT JOIN pg_description ds ON ds.objoid = {alias}.oid"
        f" AND ds.classoid = '{catalog}'::regclass AND ds.objsubid = 0"
    )


# --- objects of one catalog, by OID ---------------------------------------------------------


@dataclass(frozen=True)
class _ByOid:
    alias: str  # of the catalog in the query
    columns: str  # besides `oid`
    joins: str = ""  # what `columns` need
    on: str | None = None  # the column naming the relation the object is on
    comment: bool = True
    # Rows the scan's reader (`attached`) passes over at once: Heroku Connect's own objects on
    # the changed tables (`%(tables)s`, their OIDs) and internal ones, by the same tests. Left
    # out in SQL as well, where they are most of the rows and of the time; the reader still
    # decides. (`IN (SELECT unnest(...))` rather than `= ANY(...)`: the planner estimates the
    # latter element by element, and with a thousand tables that took longer than the query.)
    passed_over: str | None = None


# fmt: off
BY_OID: dict[str, _ByOid] = {
    "pg_class": _ByOid(
        "c",
        "n.nspname::text AS nspname, c.relname::text AS relname, c.relkind::text AS relkind,"
        " c.reloptions, pg_get_userbyid(c.relowner)::text AS owner,"
        " CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END AS query,"
        " i.indrelid::int AS indrelid, i.indisvalid,"
        " CASE WHEN c.relkind IN ('i', 'I') AND co.oid IS NULL AND c.relname !~ '^hcu?_idx_'"
        " THEN pg_get_indexdef(c.oid) END AS indexdef, co.oid::int AS constraint_oid",
        joins="JOIN pg_namespace n ON n.oid = c.relnamespace"
        " LEFT JOIN pg_index i ON i.indexrelid = c.oid"
        " LEFT JOIN pg_constraint co ON co.conindid = c.oid AND co.contype IN ('p', 'u', 'x')",
        passed_over="(c.relkind IN ('i', 'I') AND (co.oid IS NOT NULL OR c.relname ~ '^hcu?_idx_'))"
        " OR (c.relkind = 'S' AND right(c.relname, 7) = '_id_seq')",
    ),
    "pg_proc": _ByOid(
        "p",
        "n.nspname::text AS nspname, p.proname::text AS proname, p.prokind::text AS prokind,"
        " l.lanname::text AS lanname, p.prosqlbody IS NOT NULL AS atomic, p.proconfig,"
        " p.prosrc, pg_get_userbyid(p.proowner)::text AS owner,"
        " pg_get_function_identity_arguments(p.oid) AS args,"
        " CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) END AS functiondef",
        joins="JOIN pg_namespace n ON n.oid = p.pronamespace"
        " JOIN pg_language l ON l.oid = p.prolang",
    ),
    "pg_constraint": _ByOid(
        "co",
        "co.conname::text AS conname, co.contype::text AS contype,"
        " co.confrelid::int AS confrelid, pg_get_constraintdef(co.oid) AS def",
        on="conrelid",
        passed_over="co.contype = 't'"
        " OR (co.contype = 'p' AND co.conrelid IN (SELECT unnest(%(tables)s::oid[])))",
    ),
    "pg_trigger": _ByOid(
        "t",
        "t.tgname::text AS tgname, t.tgisinternal, t.tgenabled::text AS tgenabled,"
        " CASE WHEN NOT t.tgisinternal AND t.tgname !~ '^hc_.+_(logtrigger|status_trigger)$'"
        " THEN pg_get_triggerdef(t.oid) END AS def",
        on="tgrelid",
    ),
    "pg_rewrite": _ByOid(
        "w",
        "w.rulename::text AS rulename, w.ev_enabled::text AS enabled,"
        " pg_get_ruledef(w.oid) AS def",
        on="ev_class",
    ),
    "pg_policy": _ByOid(
        "p",
        "p.polname::text AS polname, p.polcmd::text AS cmd, p.polpermissive,"
        " ARRAY(SELECT CASE WHEN x = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x)::text END"
        " FROM unnest(p.polroles) x) AS roles,"
        " pg_get_expr(p.polqual, p.polrelid) AS qual,"
        " pg_get_expr(p.polwithcheck, p.polrelid) AS withcheck",
        on="polrelid",
    ),
    "pg_attrdef": _ByOid(
        "d",
        "a.attname::text AS attname, pg_get_expr(d.adbin, d.adrelid) AS expr,"
        " a.attgenerated::text AS generated",
        joins="JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum",
        on="adrelid",
        comment=False,
        passed_over="a.attname = 'id' AND d.adrelid IN (SELECT unnest(%(tables)s::oid[]))",
    ),
    "pg_statistic_ext": _ByOid(
        "s",
        "n.nspname::text AS nspname, s.stxname::text AS stxname, s.stxrelid::int AS relid,"
        " pg_get_statisticsobjdef(s.oid) AS def, s.stxstattarget::int AS stattarget,"
        " pg_get_userbyid(s.stxowner)::text AS owner",
        joins="JOIN pg_namespace n ON n.oid = s.stxnamespace",
    ),
    "pg_publication_rel": _ByOid(
        "pr",
        "p.pubname::text AS pubname, pr.prrelid::int AS relid,"
        " ARRAY(SELECT a.attname::text FROM unnest(pr.prattrs::int2[]) WITH ORDINALITY k(num, ord)"
        " JOIN pg_attribute a ON a.attrelid = pr.prrelid AND a.attnum = k.num"
        " ORDER BY k.ord) AS columns, pg_get_expr(pr.prqual, pr.prrelid) AS qual",
        joins="JOIN pg_publication p ON p.oid = pr.prpubid",
        comment=False,
    ),
}
# fmt: on


@cache
def by_oid_query(catalog: str, passing_over: bool = False) -> str:
    """SELECT oid, the catalog's columns, [relid, relschema, relname], [comment] WHERE oid in
    %(oids)s [and the row is not one the reader passes over]."""
    spec, a = BY_OID[catalog], BY_OID[catalog].alias
    columns, joins = [f"{a}.oid::int AS oid", spec.columns], [spec.joins]
    if spec.on:
        columns.append(
            f"{a}.{spec.on}::int AS relid, rn.nspname::text AS relschema, r.relname::text AS relname"
        )
        joins.append(
            f"JOIN pg_class r ON r.oid = {a}.{spec.on} JOIN pg_namespace rn ON rn.oid = r.relnamespace"
        )
    if spec.comment:
        columns.append("ds.description AS comment")
        joins.append(_described(a, catalog))
    # Every part comes from BY_OID above, none from input.
    select = f"SELECT {', '.join(columns)} FROM {catalog} {a}"  # noqa: S608
    where = f"{a}.oid = ANY(%(oids)s::oid[])"
    if passing_over and spec.passed_over:
        where += f" AND NOT ({spec.passed_over})"
    return f"{select} {' '.join(j for j in joins if j)} WHERE {where}"


def by_oid(
    conn: psycopg.Connection, catalog: str, oids: Iterable[int], tables: list[int] | None = None
) -> list[dict]:
    """The objects `oids` of `catalog`; with `tables` (the changed tables' OIDs), without the
    ones `attached` passes over (see `_ByOid.passed_over`)."""
    query = by_oid_query(catalog, passing_over=tables is not None)
    return fetch(conn, query, {"oids": oid_array(oids), "tables": oid_array(tables or ())})


# --- ACLs -----------------------------------------------------------------------------------

# Where each catalog keeps an object's ACL and owner, and the acldefault() type of its objects.
ACL_COLUMNS: dict[str, tuple[str, str, str]] = {
    "pg_class": ("relacl", "relowner", "r"),
    "pg_proc": ("proacl", "proowner", "f"),
    "pg_namespace": ("nspacl", "nspowner", "n"),
}

# Grants other than the owner's own, and what differs from the default ACL, as rows
# (oid, op, grantee, role, privilege, grantable); `op` is 'grant' or 'revoke'.
_ACL = """
WITH o AS (
    SELECT oid::int AS oid, {acl} AS acl, {owner} AS owner, '{deftype}'::"char" AS t
    FROM {catalog} WHERE oid = ANY(%s::oid[])
)
SELECT o.oid, 'grant' AS op, a.grantee::int AS grantee,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END AS role,
       a.privilege_type AS privilege, a.is_grantable AS grantable
FROM o CROSS JOIN LATERAL aclexplode(coalesce(o.acl, acldefault(o.t, o.owner))) a
WHERE a.grantee <> o.owner AND NOT EXISTS (
    SELECT 1 FROM aclexplode(acldefault(o.t, o.owner)) d
    WHERE d.grantee = a.grantee AND d.privilege_type = a.privilege_type)
UNION ALL
SELECT o.oid, 'revoke', d.grantee::int,
       CASE WHEN d.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(d.grantee)::text END,
       d.privilege_type, false
FROM o CROSS JOIN LATERAL aclexplode(acldefault(o.t, o.owner)) d
WHERE d.grantee <> o.owner AND NOT EXISTS (
    SELECT 1 FROM aclexplode(coalesce(o.acl, acldefault(o.t, o.owner))) a
    WHERE a.grantee = d.grantee AND a.privilege_type = d.privilege_type)
"""


def acl_rows(conn: psycopg.Connection, catalog: str, oids: list[int]) -> list[dict]:
    acl, owner, deftype = ACL_COLUMNS[catalog]
    query = _ACL.format(acl=acl, owner=owner, deftype=deftype, catalog=catalog)
    return fetch(conn, query, (oid_array(oids),))


COLUMN_ACL = """
SELECT a.attrelid::int AS oid, a.attname::text AS column, x.grantee::int AS grantee,
       CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee)::text END AS role,
       x.privilege_type AS privilege, x.is_grantable AS grantable
FROM pg_attribute a CROSS JOIN LATERAL aclexplode(a.attacl) x
WHERE a.attrelid = ANY(%s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL
"""

DEFAULT_ACL = """
SELECT pg_get_userbyid(d.defaclrole)::text AS owner, d.defaclobjtype::text AS objtype,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END AS role,
       a.privilege_type AS privilege, a.is_grantable AS grantable
FROM pg_default_acl d CROSS JOIN LATERAL aclexplode(d.defaclacl) a
WHERE d.defaclnamespace = %s
"""

# --- the changed tables and what follows them -------------------------------------------------

PUBLIC_ROLE = "SELECT 1 AS x FROM pg_catalog.pg_roles WHERE upper(rolname) = 'PUBLIC'"

# The catalogs whose OIDs the scan compares with pg_depend's classid and refclassid.
CATALOGS = (
    "pg_class", "pg_type", "pg_proc", "pg_rewrite", "pg_constraint", "pg_trigger", "pg_policy",
    "pg_attrdef", "pg_statistic_ext", "pg_publication_rel",
)  # fmt: skip

_CLASSES = """
SELECT c.relname::text AS relname, c.oid::int AS oid FROM pg_class c
WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relname = ANY(%s)
"""


def catalog_oids(conn: psycopg.Connection) -> dict[str, int]:
    """name -> OID of each of `CATALOGS`."""
    return {r["relname"]: r["oid"] for r in fetch(conn, _CLASSES, (list(CATALOGS),))}


TABLES = """
SELECT c.oid::int AS oid, c.relname::text AS relname, c.reltype::int AS reltype,
       t.typarray::int AS typarray, pg_get_userbyid(c.relowner)::text AS owner,
       c.relrowsecurity, c.relforcerowsecurity, c.relreplident::text AS relreplident,
       c.reloptions, ri.relname::text AS replica_index, ds.description AS comment
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_type t ON t.oid = c.reltype
LEFT JOIN pg_index ix ON ix.indrelid = c.oid AND ix.indisreplident
LEFT JOIN pg_class ri ON ri.oid = ix.indexrelid
LEFT JOIN pg_description ds ON ds.objoid = c.oid AND ds.classoid = 'pg_class'::regclass
     AND ds.objsubid = 0
WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p')
"""

COLUMNS = """
SELECT a.attrelid::int AS relid, a.attnum::int AS attnum, a.attname::text AS attname,
       a.attnotnull, ds.description AS comment
FROM pg_attribute a
LEFT JOIN pg_description ds ON ds.objoid = a.attrelid AND ds.classoid = 'pg_class'::regclass
     AND ds.objsubid = a.attnum
WHERE a.attrelid = ANY(%s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
"""

DEPEND = """
SELECT d.classid::int AS classid, d.objid::int AS objid, d.objsubid, d.refclassid::int AS refclassid,
       d.refobjid::int AS refobjid, d.refobjsubid, r.ev_class::int AS ev_class,
       r.rulename::text AS rulename, v.reltype::int AS ev_reltype, vt.typarray::int AS ev_typarray
FROM unnest(%s::oid[], %s::oid[]) AS f(cls, obj)
JOIN pg_depend d ON d.refclassid = f.cls AND d.refobjid = f.obj
-- Probed only for rules: a join condition on classid alone would probe it for every row.
LEFT JOIN pg_rewrite r ON r.oid = CASE WHEN d.classid = 'pg_rewrite'::regclass THEN d.objid END
LEFT JOIN pg_class v ON v.oid = r.ev_class AND r.rulename = '_RETURN'
LEFT JOIN pg_type vt ON vt.oid = v.reltype
WHERE d.deptype IN ('n', 'a')
"""


class DependRow(NamedTuple):
    """A row of `DEPEND`: the closure reads some ten thousand, as tuples rather than dicts."""

    classid: int
    objid: int
    objsubid: int
    refclassid: int
    refobjid: int
    refobjsubid: int
    ev_class: int | None
    rulename: str | None
    ev_reltype: int | None
    ev_typarray: int | None


def depend_rows(conn: psycopg.Connection, params: Any) -> list[DependRow]:
    rows = conn.cursor(row_factory=tuple_row).execute(DEPEND, params).fetchall()
    return [DependRow._make(r) for r in rows]


DESCRIBE = """
SELECT f.cls::int AS classid, f.obj::int AS objid, f.sub::int AS objsubid,
       pg_describe_object(f.cls, f.obj, f.sub) AS description
FROM unnest(%s::oid[], %s::oid[], %s::int[]) AS f(cls, obj, sub)
"""

INDEX_NAMES = """
SELECT c.oid::int AS oid, c.relname::text AS relname, i.indrelid::int AS indrelid
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = ANY(%s)
"""

# --- functions whose bodies are resolved at run time -----------------------------------------

TEXT_PROCS = """
SELECT p.oid::int AS oid, n.nspname::text AS nspname, p.proname::text AS proname,
       l.lanname::text AS lanname, p.prosrc, p.proconfig
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname <> ALL (ARRAY['pg_catalog', 'information_schema'])
  AND n.nspname !~ '^pg_(toast|temp_)'
  AND p.prosqlbody IS NULL AND p.prokind IN ('f', 'p')
  AND l.lanname <> ALL (ARRAY['c', 'internal'])
  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass
                  AND e.objid = p.oid AND e.deptype = 'e')
  -- Heroku Connect's trigger functions, two per mapping: megabytes of bodies nobody reads.
  -- Only names managed.hc_function() also leaves out (it still decides).
  AND NOT (p.proname ~ '^hc_[^\\n]+_(logger|status)$' AND EXISTS (
      SELECT 1 FROM pg_class t WHERE t.relnamespace = n.oid AND t.relname = '_trigger_log'
      AND t.relkind = 'r'))
"""

HC_SCHEMAS = """
SELECT n.nspname::text AS nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = '_trigger_log' AND c.relkind = 'r'
"""

# --- the schema itself, and Heroku Connect's own objects ------------------------------------

SCHEMA = """
SELECT n.oid::int AS oid, pg_get_userbyid(n.nspowner)::text AS owner, ds.description AS comment
FROM pg_namespace n
LEFT JOIN pg_description ds ON ds.objoid = n.oid AND ds.classoid = 'pg_namespace'::regclass
     AND ds.objsubid = 0
WHERE n.nspname = %s
"""

SCHEMA_PUBLICATIONS = """
SELECT p.pubname::text AS pubname FROM pg_publication_namespace pn
JOIN pg_publication p ON p.oid = pn.pnpubid WHERE pn.pnnspid = %s
"""

SYSTEM = """
SELECT c.oid::int AS oid, c.relname::text AS relname, c.relkind::text AS relkind
FROM pg_class c WHERE c.relnamespace = %s AND c.relname = ANY(%s)
"""

SCHEMA_FUNCTIONS = """
SELECT p.oid::int AS oid, n.nspname::text AS nspname, p.proname::text AS proname,
       pg_get_function_identity_arguments(p.oid) AS args
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE (n.nspname = %s AND (p.proname = ANY(%s) OR p.proname ~ '^hc_.+_(logger|status)$'))
   OR (n.nspname = 'public' AND p.proname = 'get_xmlbinary')
"""
