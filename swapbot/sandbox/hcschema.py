"""Heroku Connect's database layout, reproduced in a real PostgreSQL database for the sandbox.

The DDL and the trigger function bodies follow public pg_dumps of HC-managed schemas (the HC
reference, section 5), including their traps: the bodies call
``get_xmlbinary()``, ``hstore(...)`` and the hstore ``-`` operator unqualified and do not pin
``search_path``, so a session whose path lacks ``public`` cannot write to a mapped table.

Every function runs inside the caller's transaction and never commits.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from swapbot.database.hc_layout import (  # the names HC gives its objects
    MAX_IDENTIFIER,
    index_name,
    log_trigger_name,
    logger_function_name,
    status_function_name,
    status_trigger_name,
)

# HC's own sessions set xmlbinary to this; app sessions keep PostgreSQL's default.
HC_XMLBINARY = "hex"
APP_XMLBINARY = "base64"

# The trigger-log state an app write gets, by mapping access.
ACCESS_STATES = {"read_write": "NEW", "read_only": "READONLY"}

# Columns HC adds to every mapped table, in the order the dumps show them after the fields.
SYSTEM_COLUMNS = ("sfid", "id", "_hc_lastop", "_hc_err")

# _hcmeta.hcver: public dumps show the column but no data; the value is a placeholder.
DEFAULT_HCVER = 1

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_OBJECT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
# A PostgreSQL type as written in DDL: words, optional (n) or (p,s), optional time-zone words
# and []; no quotes, semicolons or dashes, so it cannot carry anything but a type.
_TYPE = re.compile(r"^[a-z][a-z0-9_ ]*(\(\d+(, ?\d+)?\))?( with(out)? time zone)?(\[\])?$")


def check_name(name: str) -> str:
    """Return ``name`` if it is a plain lower-case PostgreSQL identifier, else raise ValueError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"not a valid lower-case identifier: {name!r}")
    return name


def _check_type(pg_type: str) -> str:
    if not isinstance(pg_type, str) or not _TYPE.match(pg_type.strip().lower()):
        raise ValueError(f"not a valid column type: {pg_type!r}")
    return pg_type.strip().lower()


def _check_access(access: str) -> str:
    if access not in ACCESS_STATES:
        raise ValueError(f"access must be one of {sorted(ACCESS_STATES)}, not {access!r}")
    return access


def table_name_for(object_name: str) -> str:
    """The table HC creates for a Salesforce object: its API name lower-cased."""
    if not isinstance(object_name, str) or not _OBJECT_NAME.match(object_name):
        raise ValueError(f"not a Salesforce object API name: {object_name!r}")
    return check_name(object_name.lower())


def notify_channel(schema: str) -> str:
    """The channel ``tlog_insert_trigger`` notifies when a change is captured."""
    return f"{check_name(schema)}.hc_trigger_log"


# --- function bodies (logic as in the public dumps) --------------------------------------------

_GET_XMLBINARY_BODY = """
    DECLARE
      xmlbin varchar;
    BEGIN
      select into xmlbin setting from pg_settings where name='xmlbinary';
      RETURN xmlbin;
    END;
"""

_TLOG_NOTIFY_BODY = """
    DECLARE
    BEGIN
      -- VERSION 1 --
      PERFORM pg_notify({channel}, 'ping');
      RETURN new;
    END;
"""

_CAPTURE_INSERT_BODY = """
    DECLARE
        excluded_cols_standard text[] = ARRAY['_hc_lastop', '_hc_err']::text[];
        retval int;
    BEGIN
        -- VERSION 1 --
        IF (source_row -> 'id') IS NULL THEN
            -- source_row is required to have an int id value
            RETURN NULL;
        END IF;
        excluded_cols_standard := array_remove(
            array_remove(excluded_cols, 'id'), 'sfid') || excluded_cols_standard;
        INSERT INTO {trigger_log} (
            action, table_name, txid, created_at, state, record_id, values)
        VALUES (
            'INSERT', table_name, txid_current(), clock_timestamp(), 'NEW',
            (source_row -> 'id')::int,
            source_row - excluded_cols_standard
        ) RETURNING id INTO retval;
        RETURN retval;
    END;
"""

_CAPTURE_UPDATE_BODY = """
    DECLARE
        excluded_cols_standard text[] = ARRAY['_hc_lastop', '_hc_err']::text[];
        excluded_cols text[];
        retval int;
    BEGIN
        -- VERSION 1 --
        IF (source_row -> 'id') IS NULL THEN
            -- source_row is required to have an int id value
            RETURN NULL;
        END IF;
        IF array_length(columns_to_include, 1) <> 0 THEN
            excluded_cols := array(
                select skeys(source_row)
                except
                select unnest(columns_to_include)
            );
        END IF;
        excluded_cols_standard := excluded_cols || excluded_cols_standard;
        INSERT INTO {trigger_log} (
            action, table_name, txid, created_at, state, record_id, sfid, values, old)
        VALUES (
            'UPDATE', table_name, txid_current(), clock_timestamp(), 'NEW',
            (source_row -> 'id')::int, source_row -> 'sfid',
            source_row - excluded_cols_standard, NULL
        ) RETURNING id INTO retval;
        RETURN retval;
    END;
"""

# Read-write loggers mark no-op updates and deletes of never-synced rows IGNORE; read-only
# loggers in the dumps have no such branches (every change is READONLY).
_IGNORE_DELETE = """
            ELSE
                trigger_row.state = 'IGNORE';"""

_IGNORE_UPDATE = """
            IF (trigger_row.values = '') THEN
                -- nothing changed, ignore
                trigger_row.state = 'IGNORE';
            END IF;"""

_LOGGER_BODY = """
    DECLARE
        trigger_row {trigger_log};
        excluded_cols text[] = ARRAY['_hc_lastop', '_hc_err']::text[];
    BEGIN
        -- VERSION 4 --
        trigger_row = ROW();
        trigger_row.id = nextval({sequence});
        trigger_row.action = TG_OP::text;
        trigger_row.table_name = TG_TABLE_NAME::text;
        trigger_row.txid = txid_current();
        trigger_row.created_at = clock_timestamp();
        trigger_row.state = {state};
        IF (TG_OP = 'DELETE') THEN
            trigger_row.record_id = OLD.id;
            trigger_row.old = hstore(OLD.*) - excluded_cols;
            IF (OLD.sfid IS NOT NULL) THEN
                trigger_row.sfid = OLD.sfid;{ignore_delete}
            END IF;
        ELSEIF (TG_OP = 'INSERT') THEN
            trigger_row.record_id = NEW.id;
            trigger_row.values = hstore(NEW.*) - excluded_cols;
        ELSEIF (TG_OP = 'UPDATE') THEN
            trigger_row.record_id = NEW.id;
            trigger_row.old = hstore(OLD.*) - excluded_cols;
            trigger_row.values = (hstore(NEW.*) - hstore(trigger_row.old)) - excluded_cols;{ignore_update}
            IF (OLD.sfid IS NOT NULL) THEN
                trigger_row.sfid = OLD.sfid;
            END IF;
        END IF;
        INSERT INTO {trigger_log} VALUES (trigger_row.*);
        RETURN NULL;
    END;
"""

_STATUS_BODY = """
    BEGIN
      IF (get_xmlbinary() = 'base64') THEN  -- user op
        NEW._hc_lastop = 'PENDING';
        NEW._hc_err = NULL;
        RETURN NEW;
      ELSE  -- connect op
        IF (TG_OP = 'UPDATE' AND NEW._hc_lastop IS NOT NULL AND NEW._hc_lastop != OLD._hc_lastop) THEN
            RETURN NEW;
        END IF;
        NEW._hc_lastop = 'SYNCED';
        NEW._hc_err = NULL;
        RETURN NEW;
      END IF;
    END;
"""


def _body(conn: psycopg.Connection, template: str, **parts: sql.Composable) -> sql.Literal:
    """Render a plpgsql body with its identifiers and literals quoted by psycopg."""
    return sql.Literal(sql.SQL(template).format(**parts).as_string(conn))


_NO_ARGS = sql.SQL("")


def _create_function(
    conn: psycopg.Connection,
    name: sql.Identifier,
    body: sql.Literal,
    *,
    args: sql.Composable = _NO_ARGS,
    returns: str = "trigger",
) -> None:
    conn.execute(
        sql.SQL("CREATE OR REPLACE FUNCTION {}({}) RETURNS {} LANGUAGE plpgsql AS {}").format(
            name, args, sql.SQL(returns), body
        )
    )


# --- public API ----------------------------------------------------------------------------


def has_system_tables(conn: psycopg.Connection, schema: str) -> bool:
    """Whether HC has set the schema up: its trigger log is there."""
    found = conn.execute(
        "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = '_trigger_log'", (schema,)
    ).fetchone()
    return found is not None


def install_prerequisites(conn: psycopg.Connection) -> None:
    """hstore and public.get_xmlbinary(), shared by every HC connection on the database."""
    conn.execute("CREATE EXTENSION IF NOT EXISTS hstore WITH SCHEMA public")
    _create_function(
        conn,
        sql.Identifier("public", "get_xmlbinary"),
        sql.Literal(_GET_XMLBINARY_BODY),
        returns="character varying",
    )


def create_system_tables(
    conn: psycopg.Connection,
    schema: str,
    *,
    org_id: str | None = None,
    hcver: int = DEFAULT_HCVER,
) -> None:
    """HC's per-schema tables, their indexes, helper functions and the notify trigger."""
    s = check_name(schema)

    def ident(name: str) -> sql.Identifier:
        return sql.Identifier(s, name)

    trigger_log_columns = sql.SQL(
        """
        txid bigint,
        created_at timestamp with time zone {default},
        updated_at timestamp with time zone {default},
        processed_at timestamp with time zone,
        processed_tx bigint,
        state character varying(8),
        action character varying(7),
        table_name character varying(128),
        record_id integer,
        sfid character varying(18),
        old text,
        "values" text,
        sf_result integer,
        sf_message text
        """
    )
    statements = [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(s)),
        sql.SQL(
            """CREATE TABLE IF NOT EXISTS {} (
                id serial NOT NULL,
                hcver integer,
                org_id character varying(50),
                details text,
                CONSTRAINT _hcmeta_pkey PRIMARY KEY (id))"""
        ).format(ident("_hcmeta")),
        sql.SQL(
            """CREATE TABLE IF NOT EXISTS {} (
                id serial NOT NULL,
                {},
                CONSTRAINT _trigger_log_pkey PRIMARY KEY (id))"""
        ).format(
            ident("_trigger_log"), trigger_log_columns.format(default=sql.SQL("DEFAULT now()"))
        ),
        sql.SQL(
            """CREATE TABLE IF NOT EXISTS {} (
                id integer NOT NULL,
                {},
                CONSTRAINT _trigger_log_archive_pkey PRIMARY KEY (id))"""
        ).format(ident("_trigger_log_archive"), trigger_log_columns.format(default=sql.SQL(""))),
        sql.SQL(
            """CREATE TABLE IF NOT EXISTS {} (
                id serial NOT NULL,
                table_name character varying(128),
                action character varying(7),
                synced_at timestamp with time zone DEFAULT now(),
                sf_timestamp timestamp with time zone,
                sfid character varying(20),
                record text,
                processed boolean,
                CONSTRAINT _sf_event_log_pkey PRIMARY KEY (id))"""
        ).format(ident("_sf_event_log")),
    ]
    indexes = [
        ("_trigger_log_idx_state_id", "_trigger_log", "(state, id)"),
        ("_trigger_log_idx_created_at", "_trigger_log", "(created_at)"),
        (
            "_trigger_log_idx_state_table_name",
            "_trigger_log",
            "(state, table_name) WHERE ((state)::text = 'NEW'::text)"
            " OR ((state)::text = 'PENDING'::text)",
        ),
        (
            "_trigger_log_archive_idx_state_table_name",
            "_trigger_log_archive",
            "(state, table_name) WHERE ((state)::text = 'FAILED'::text)",
        ),
        ("_trigger_log_archive_idx_created_at", "_trigger_log_archive", "(created_at)"),
        ("_trigger_log_archive_idx_record_id", "_trigger_log_archive", "(record_id)"),
        ("idx__sf_event_log_comp_key", "_sf_event_log", "(table_name, synced_at)"),
        ("idx__sf_event_log_sfid", "_sf_event_log", "(sfid)"),
    ]
    statements += [
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING btree {}").format(
            sql.Identifier(name), ident(table), sql.SQL(spec)
        )
        for name, table, spec in indexes
    ]
    for statement in statements:
        conn.execute(statement)

    trigger_log = ident("_trigger_log")
    _create_function(
        conn,
        ident("tlog_notify_trigger"),
        _body(conn, _TLOG_NOTIFY_BODY, channel=sql.Literal(notify_channel(s))),
    )
    # HC's two helpers that log a row by hand; each takes a list of columns as its last argument.
    for name, body, columns in (
        ("hc_capture_insert_from_row", _CAPTURE_INSERT_BODY, "excluded_cols"),
        ("hc_capture_update_from_row", _CAPTURE_UPDATE_BODY, "columns_to_include"),
    ):
        _create_function(
            conn,
            ident(name),
            _body(conn, body, trigger_log=trigger_log),
            args=sql.SQL(
                "source_row public.hstore, table_name character varying,"
                " {} text[] DEFAULT ARRAY[]::text[]"
            ).format(sql.SQL(columns)),
            returns="integer",
        )
    conn.execute(
        sql.SQL(
            "CREATE OR REPLACE TRIGGER tlog_insert_trigger AFTER INSERT ON {}"
            " FOR EACH ROW EXECUTE FUNCTION {}()"
        ).format(trigger_log, ident("tlog_notify_trigger"))
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {table} (hcver, org_id) SELECT %s, %s"
            " WHERE NOT EXISTS (SELECT 1 FROM {table})"
        ).format(table=ident("_hcmeta")),
        (hcver, org_id),
    )


def _create_logger(conn: psycopg.Connection, schema: str, table: str, access: str) -> None:
    read_write = _check_access(access) == "read_write"
    _create_function(
        conn,
        sql.Identifier(schema, logger_function_name(table)),
        _body(
            conn,
            _LOGGER_BODY,
            trigger_log=sql.Identifier(schema, "_trigger_log"),
            sequence=sql.Literal(sql.Identifier(schema, "_trigger_log_id_seq").as_string(conn)),
            state=sql.Literal(ACCESS_STATES[access]),
            ignore_delete=sql.SQL(_IGNORE_DELETE if read_write else ""),
            ignore_update=sql.SQL(_IGNORE_UPDATE if read_write else ""),
        ),
    )


def create_mapped_table(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    columns: Mapping[str, str],
    *,
    access: str,
    indexes: Mapping[str, bool],
) -> None:
    """A mapped table as HC creates it, with its logger and status functions and triggers.

    ``columns`` maps the lower-case column of every mapped field except ``Id`` to its type;
    ``Id`` is the ``sfid`` column. ``indexes`` maps a column to its unique flag; the key ``id``
    (the Salesforce ``Id`` field lower-cased) means ``sfid``.
    """
    s, t = check_name(schema), check_name(table)
    _check_access(access)
    fields = {check_name(name): _check_type(pg_type) for name, pg_type in columns.items()}
    clash = set(fields) & set(SYSTEM_COLUMNS)
    if clash:
        raise ValueError(f"system columns cannot be mapped fields: {sorted(clash)}")
    wanted = {"sfid": True}
    for column, unique in indexes.items():
        column = "sfid" if check_name(column) == "id" else column
        if column not in fields and column != "sfid":
            raise ValueError(f"index on a column the table does not have: {column!r}")
        wanted[column] = bool(unique) or wanted.get(column, False)

    target = sql.Identifier(s, t)
    definitions = [
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(pg_type))
        for name, pg_type in fields.items()
    ]
    definitions += [
        sql.SQL("sfid character varying(18)"),
        sql.SQL("id serial NOT NULL"),
        sql.SQL("_hc_lastop character varying(32)"),
        sql.SQL("_hc_err text"),
        sql.SQL("CONSTRAINT {} PRIMARY KEY (id)").format(
            sql.Identifier(f"{t}_pkey"[:MAX_IDENTIFIER])
        ),
    ]
    conn.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
            target, sql.SQL(", ").join(definitions)
        )
    )
    for column, unique in wanted.items():
        conn.execute(
            sql.SQL("CREATE {} INDEX IF NOT EXISTS {} ON {} USING btree ({})").format(
                sql.SQL("UNIQUE" if unique else ""),
                sql.Identifier(index_name(t, column, unique=unique)),
                target,
                sql.Identifier(column),
            )
        )

    _create_logger(conn, s, t, access)
    _create_function(conn, sql.Identifier(s, status_function_name(t)), sql.Literal(_STATUS_BODY))
    # The WHEN clause is bound by OID at creation (pg_dump prints public.get_xmlbinary());
    # the trap is in the function bodies, which resolve names at run time.
    conn.execute(
        sql.SQL(
            "CREATE OR REPLACE TRIGGER {} AFTER INSERT OR DELETE OR UPDATE ON {} FOR EACH ROW"
            " WHEN (((public.get_xmlbinary())::text = 'base64'::text)) EXECUTE FUNCTION {}()"
        ).format(
            sql.Identifier(log_trigger_name(t)),
            target,
            sql.Identifier(s, logger_function_name(t)),
        )
    )
    conn.execute(
        sql.SQL(
            "CREATE OR REPLACE TRIGGER {} BEFORE INSERT OR UPDATE ON {} FOR EACH ROW"
            " EXECUTE FUNCTION {}()"
        ).format(
            sql.Identifier(status_trigger_name(t)),
            target,
            sql.Identifier(s, status_function_name(t)),
        )
    )


def add_columns(
    conn: psycopg.Connection, schema: str, table: str, columns: Mapping[str, str]
) -> None:
    """Add mapped fields to a table; the logger captures them without being recreated."""
    s, t = check_name(schema), check_name(table)
    for name, pg_type in columns.items():
        if check_name(name) in SYSTEM_COLUMNS:
            raise ValueError(f"system columns cannot be mapped fields: {name!r}")
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                sql.Identifier(s, t), sql.Identifier(name), sql.SQL(_check_type(pg_type))
            )
        )


def set_access(conn: psycopg.Connection, schema: str, table: str, access: str) -> None:
    """Recreate the table's logger so app writes get the state of the new access."""
    _create_logger(conn, check_name(schema), check_name(table), access)


def drop_hc_objects(conn: psycopg.Connection, schema: str, table: str) -> None:
    """Remove HC's triggers and functions for a table; the table and its data stay."""
    s, t = check_name(schema), check_name(table)
    for trigger in (log_trigger_name(t), status_trigger_name(t)):
        conn.execute(
            sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                sql.Identifier(trigger), sql.Identifier(s, t)
            )
        )
    for function in (logger_function_name(t), status_function_name(t)):
        conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(sql.Identifier(s, function)))


def drop_mapped_table(
    conn: psycopg.Connection, schema: str, table: str, *, cascade: bool = False
) -> None:
    """Drop a mapped table with its HC functions and triggers.

    Without ``cascade`` this fails while views or foreign keys still depend on the table.
    """
    drop_hc_objects(conn, schema, table)
    conn.execute(
        sql.SQL("DROP TABLE IF EXISTS {}{}").format(
            sql.Identifier(schema, table), sql.SQL(" CASCADE" if cascade else "")
        )
    )


@contextmanager
def hc_session(conn: psycopg.Connection) -> Iterator[None]:
    """Act as Heroku Connect itself for the block: writes are neither logged nor PENDING.

    A session-level setting, restored afterwards. If the block leaves a failed transaction,
    the restore is skipped: the caller's rollback undoes a SET made in that transaction.
    """
    previous = conn.execute("SELECT pg_catalog.current_setting('xmlbinary')").fetchone()
    assert previous is not None
    conn.execute("SELECT pg_catalog.set_config('xmlbinary', %s, false)", (HC_XMLBINARY,))
    try:
        yield
    finally:
        if not conn.closed and conn.info.transaction_status != TransactionStatus.INERROR:
            conn.execute("SELECT pg_catalog.set_config('xmlbinary', %s, false)", (previous[0],))
