"""The sandbox's copy of Heroku Connect's schema, exercised on a real PostgreSQL database."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.rows import dict_row

from swapbot.database import hc_layout
from swapbot.sandbox import hcschema
from swapbot.sandbox.hcschema import (
    create_mapped_table,
    create_system_tables,
    hc_session,
    install_prerequisites,
)
from swapbot.sandbox.unmanaged import demo_objects
from tests.db_fixture import STAMPS, TABLES

S = "schema1"
# The demo scenario's tables: db_fixture's, and the few more fields the demo maps.
DEMO_FIELDS = {
    "opportunity": {"closedate": "date"},
    "invoice__c": {"status__c": "varchar(255)", "due_date__c": "date"},
}
DEMO_TABLES = {table: {**TABLES[table], **DEMO_FIELDS.get(table, {})} for table in TABLES}
DEMO_INDEXES = {"id": True, "systemmodstamp": False}


def hc_schema(db: psycopg.Connection, schema: str = S) -> None:
    install_prerequisites(db)
    create_system_tables(db, schema, org_id="00D000000000001")


def account_table(db: psycopg.Connection, access: str = "read_write", table: str = "account"):
    create_mapped_table(
        db,
        S,
        table,
        {"name": "varchar(255)", "billingcity": "varchar(40)", **STAMPS},
        access=access,
        indexes={"id": True, "systemmodstamp": False, "billingcity": False},
    )


def trigger_log(db: psycopg.Connection, schema: str = S) -> list[dict]:
    query = sql.SQL(
        "SELECT state, action, table_name, record_id, sfid, txid,"
        ' hstore_to_json(old::hstore) AS old, hstore_to_json("values"::hstore) AS values'
        " FROM {} ORDER BY id"
    ).format(sql.Identifier(schema, "_trigger_log"))
    return db.cursor(row_factory=dict_row).execute(query).fetchall()


def one(db: psycopg.Connection, query: str, params: tuple = ()):
    row = db.execute(query, params).fetchone()
    return None if row is None else row[0]


# --- layout ---------------------------------------------------------------------------------


def test_system_tables_have_hc_columns_indexes_functions_and_trigger(db):
    hc_schema(db)

    columns = db.execute(
        "SELECT column_name, data_type, character_maximum_length, column_default"
        " FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = '_trigger_log' ORDER BY ordinal_position",
        (S,),
    ).fetchall()
    assert [(c[0], c[1], c[2]) for c in columns] == [
        ("id", "integer", None),
        ("txid", "bigint", None),
        ("created_at", "timestamp with time zone", None),
        ("updated_at", "timestamp with time zone", None),
        ("processed_at", "timestamp with time zone", None),
        ("processed_tx", "bigint", None),
        ("state", "character varying", 8),
        ("action", "character varying", 7),
        ("table_name", "character varying", 128),
        ("record_id", "integer", None),
        ("sfid", "character varying", 18),
        ("old", "text", None),
        ("values", "text", None),
        ("sf_result", "integer", None),
        ("sf_message", "text", None),
    ]
    defaults = {c[0]: c[3] for c in columns if c[3] is not None}
    assert defaults == {
        "id": "nextval('schema1._trigger_log_id_seq'::regclass)",
        "created_at": "now()",
        "updated_at": "now()",
    }
    archive_defaults = one(
        db,
        "SELECT count(column_default) FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = '_trigger_log_archive'",
        (S,),
    )
    assert archive_defaults == 0
    for table, expected in {
        "_hcmeta": ["id", "hcver", "org_id", "details"],
        "_sf_event_log": [
            "id", "table_name", "action", "synced_at", "sf_timestamp", "sfid", "record", "processed",
        ],
        "_trigger_log_archive": [c[0] for c in columns],
    }.items():  # fmt: skip
        names = db.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (S, table),
        ).fetchall()
        assert [n for (n,) in names] == expected, table

    indexes = dict(
        db.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s", (S,))
    )
    assert set(indexes) == {
        "_hcmeta_pkey",
        "_sf_event_log_pkey",
        "_trigger_log_pkey",
        "_trigger_log_archive_pkey",
        "_trigger_log_idx_state_id",
        "_trigger_log_idx_created_at",
        "_trigger_log_idx_state_table_name",
        "_trigger_log_archive_idx_state_table_name",
        "_trigger_log_archive_idx_created_at",
        "_trigger_log_archive_idx_record_id",
        "idx__sf_event_log_comp_key",
        "idx__sf_event_log_sfid",
    }
    assert indexes["_trigger_log_idx_state_id"].endswith("(state, id)")
    assert (
        "WHERE (((state)::text = 'NEW'::text) OR ((state)::text = 'PENDING'::text))"
        in (indexes["_trigger_log_idx_state_table_name"])
    )
    assert (
        "WHERE ((state)::text = 'FAILED'::text)"
        in (indexes["_trigger_log_archive_idx_state_table_name"])
    )

    for signature in (
        "public.get_xmlbinary()",
        "schema1.tlog_notify_trigger()",
        "schema1.hc_capture_insert_from_row(public.hstore, character varying, text[])",
        "schema1.hc_capture_update_from_row(public.hstore, character varying, text[])",
    ):
        assert one(db, "SELECT to_regprocedure(%s)", (signature,)) is not None, signature
    trigger = one(
        db,
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'tlog_insert_trigger'"
        " AND tgrelid = 'schema1._trigger_log'::regclass",
    )
    assert trigger == (
        "CREATE TRIGGER tlog_insert_trigger AFTER INSERT ON schema1._trigger_log"
        " FOR EACH ROW EXECUTE FUNCTION schema1.tlog_notify_trigger()"
    )
    assert db.execute("SELECT hcver, org_id FROM schema1._hcmeta").fetchall() == [
        (hcschema.DEFAULT_HCVER, "00D000000000001")
    ]


def test_setup_is_idempotent(db):
    for _ in range(2):
        hc_schema(db)
        account_table(db)
    assert one(db, "SELECT count(*) FROM schema1._hcmeta") == 1
    assert hc_layout.mapped_tables(db, S) == ["account"]
    db.execute("INSERT INTO schema1.account (name) VALUES ('Acme')")
    assert len(trigger_log(db)) == 1


def test_mapped_table_layout_names_and_triggers(db):
    hc_schema(db)
    account_table(db)

    columns = db.execute(
        "SELECT column_name, data_type, character_maximum_length, is_nullable"
        " FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = 'account' ORDER BY ordinal_position",
        (S,),
    ).fetchall()
    assert columns == [
        ("name", "character varying", 255, "YES"),
        ("billingcity", "character varying", 40, "YES"),
        ("isdeleted", "boolean", None, "YES"),
        ("systemmodstamp", "timestamp without time zone", None, "YES"),
        ("createddate", "timestamp without time zone", None, "YES"),
        ("sfid", "character varying", 18, "YES"),
        ("id", "integer", None, "NO"),
        ("_hc_lastop", "character varying", 32, "YES"),
        ("_hc_err", "text", None, "YES"),
    ]
    assert one(db, "SELECT pg_get_serial_sequence('schema1.account', 'id')") == (
        "schema1.account_id_seq"
    )
    indexes = dict(
        db.execute(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = %s AND tablename = 'account'",
            (S,),
        )
    )
    assert indexes == {
        "account_pkey": "CREATE UNIQUE INDEX account_pkey ON schema1.account USING btree (id)",
        "hcu_idx_account_sfid": (
            "CREATE UNIQUE INDEX hcu_idx_account_sfid ON schema1.account USING btree (sfid)"
        ),
        "hc_idx_account_systemmodstamp": (
            "CREATE INDEX hc_idx_account_systemmodstamp ON schema1.account"
            " USING btree (systemmodstamp)"
        ),
        "hc_idx_account_billingcity": (
            "CREATE INDEX hc_idx_account_billingcity ON schema1.account USING btree (billingcity)"
        ),
    }
    assert one(
        db, "SELECT conname FROM pg_constraint WHERE conrelid = 'schema1.account'::regclass"
    ) == ("account_pkey")

    db.execute("SET search_path = pg_catalog")  # so the definitions print every schema
    triggers = dict(
        db.execute(
            "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger"
            " WHERE tgrelid = 'schema1.account'::regclass AND NOT tgisinternal"
        )
    )
    assert triggers == {
        "hc_account_logtrigger": (
            "CREATE TRIGGER hc_account_logtrigger AFTER INSERT OR DELETE OR UPDATE"
            " ON schema1.account FOR EACH ROW"
            " WHEN (((public.get_xmlbinary())::text = 'base64'::text))"
            " EXECUTE FUNCTION schema1.hc_account_logger()"
        ),
        "hc_account_status_trigger": (
            "CREATE TRIGGER hc_account_status_trigger BEFORE INSERT OR UPDATE"
            " ON schema1.account FOR EACH ROW EXECUTE FUNCTION schema1.hc_account_status()"
        ),
    }
    functions = dict(
        db.execute(
            "SELECT proname, prosrc FROM pg_proc"
            " WHERE proname IN ('hc_account_logger', 'hc_account_status')"
            " AND pronamespace = %s::regnamespace AND proconfig IS NULL",
            (S,),
        )
    )
    assert set(functions) == {"hc_account_logger", "hc_account_status"}  # search_path not pinned
    assert "-- VERSION 4 --" in functions["hc_account_logger"]
    assert (
        'INSERT INTO "schema1"."_trigger_log" VALUES (trigger_row.*)'
        in (functions["hc_account_logger"])
    )
    assert "IF (get_xmlbinary() = 'base64')" in functions["hc_account_status"]
    assert hc_layout.mapped_tables(db, S) == ["account"]


# --- capture ----------------------------------------------------------------------------------


def test_app_writes_on_read_write_table_are_logged_new_and_pending(db):
    hc_schema(db)
    account_table(db)

    with db.transaction():
        record_id = one(
            db,
            "INSERT INTO schema1.account (name, billingcity) VALUES ('Acme', 'Paris') RETURNING id",
        )
        txid = one(db, "SELECT txid_current()")
    assert one(db, "SELECT _hc_lastop FROM schema1.account") == "PENDING"
    with hc_session(db):  # HC writes the new Salesforce Id back
        db.execute("UPDATE schema1.account SET sfid = '001000000000001AAA'")
    db.execute("UPDATE schema1.account SET _hc_err = 'x'")  # app sessions clear it
    assert db.execute("SELECT _hc_lastop, _hc_err FROM schema1.account").fetchone() == (
        "PENDING",
        None,
    )
    db.execute("UPDATE schema1.account SET name = 'Acme Corp'")
    db.execute("DELETE FROM schema1.account")

    rows = trigger_log(db)
    assert [(r["state"], r["action"], r["table_name"], r["record_id"]) for r in rows] == [
        ("NEW", "INSERT", "account", record_id),
        ("IGNORE", "UPDATE", "account", record_id),  # only _hc_err changed, and it is excluded
        ("NEW", "UPDATE", "account", record_id),
        ("NEW", "DELETE", "account", record_id),
    ]
    insert, _, update, delete = rows
    assert insert["txid"] == txid
    # As in HC's dumps, only _hc_lastop and _hc_err are left out; id and sfid stay in.
    assert insert["values"] == {
        "id": str(record_id),
        "sfid": None,
        "name": "Acme",
        "billingcity": "Paris",
        "isdeleted": None,
        "systemmodstamp": None,
        "createddate": None,
    }
    assert insert["old"] is None and insert["sfid"] is None
    assert update["values"] == {"name": "Acme Corp"}
    assert update["old"]["name"] == "Acme" and "_hc_lastop" not in update["old"]
    assert update["sfid"] == "001000000000001AAA"
    assert delete["sfid"] == "001000000000001AAA"
    assert delete["old"]["name"] == "Acme Corp" and delete["values"] is None


def test_read_only_table_logs_readonly(db):
    hc_schema(db)
    account_table(db, access="read_only")
    db.execute("INSERT INTO schema1.account (name) VALUES ('Acme')")
    db.execute("UPDATE schema1.account SET name = 'Acme Corp'")
    db.execute("DELETE FROM schema1.account")
    assert [(r["state"], r["action"]) for r in trigger_log(db)] == [
        ("READONLY", "INSERT"),
        ("READONLY", "UPDATE"),
        ("READONLY", "DELETE"),
    ]


def test_noop_update_and_delete_without_sfid_log_ignore(db):
    hc_schema(db)
    account_table(db)
    db.execute("INSERT INTO schema1.account (name) VALUES ('Acme')")
    db.execute("UPDATE schema1.account SET name = name")
    db.execute("DELETE FROM schema1.account")
    rows = trigger_log(db)
    assert [(r["state"], r["action"]) for r in rows] == [
        ("NEW", "INSERT"),
        ("IGNORE", "UPDATE"),
        ("IGNORE", "DELETE"),
    ]
    assert rows[1]["values"] == {}


def test_set_access_changes_the_state_of_later_writes(db):
    hc_schema(db)
    account_table(db, access="read_only")
    db.execute("INSERT INTO schema1.account (name) VALUES ('Acme')")
    hcschema.set_access(db, S, "account", "read_write")
    db.execute("INSERT INTO schema1.account (name) VALUES ('Globex')")
    hcschema.set_access(db, S, "account", "read_only")
    db.execute("INSERT INTO schema1.account (name) VALUES ('Initech')")
    assert [r["state"] for r in trigger_log(db)] == ["READONLY", "NEW", "READONLY"]


def test_capture_helpers_queue_rows_by_hand(db):
    hc_schema(db)
    account_table(db)
    with hc_session(db):
        db.execute("INSERT INTO schema1.account (name, sfid) VALUES ('Acme', '001000000000001AAA')")
    db.execute(
        "SELECT schema1.hc_capture_insert_from_row(hstore(a.*), 'account') FROM schema1.account a"
    )
    db.execute(
        "SELECT schema1.hc_capture_update_from_row(hstore(a.*), 'account', ARRAY['name'])"
        " FROM schema1.account a"
    )
    insert, update = trigger_log(db)
    assert (insert["state"], insert["action"], insert["values"]["name"]) == (
        "NEW",
        "INSERT",
        "Acme",
    )
    assert "_hc_lastop" not in insert["values"]
    assert (update["action"], update["sfid"], update["values"]) == (
        "UPDATE",
        "001000000000001AAA",
        {"name": "Acme"},
    )


# --- HC's own sessions ----------------------------------------------------------------------


def test_writes_in_hc_session_are_not_logged_and_synced(db):
    hc_schema(db)
    account_table(db)
    with hc_session(db):
        assert one(db, "SELECT public.get_xmlbinary()") == hcschema.HC_XMLBINARY
        db.execute("INSERT INTO schema1.account (name) VALUES ('Acme')")
        assert one(db, "SELECT _hc_lastop FROM schema1.account") == "SYNCED"
        db.execute("UPDATE schema1.account SET _hc_lastop = 'FAILED', _hc_err = '{\"e\": 1}'")
        assert db.execute("SELECT _hc_lastop, _hc_err FROM schema1.account").fetchone() == (
            "FAILED",
            '{"e": 1}',
        )
        db.execute("UPDATE schema1.account SET name = 'Acme Corp'")
        assert one(db, "SELECT _hc_lastop FROM schema1.account") == "SYNCED"
        db.execute("DELETE FROM schema1.account")
    assert trigger_log(db) == []
    assert one(db, "SELECT public.get_xmlbinary()") == "base64"
    db.execute("INSERT INTO schema1.account (name) VALUES ('Globex')")
    assert [r["state"] for r in trigger_log(db)] == ["NEW"]


def test_hc_session_restores_the_setting_without_autocommit(db, db_url):
    hc_schema(db)
    account_table(db)
    with psycopg.connect(db_url) as conn:
        with hc_session(conn):
            conn.execute("INSERT INTO schema1.account (name) VALUES ('Acme')")
        conn.commit()
        assert one(conn, "SHOW xmlbinary") == "base64"
        with pytest.raises(errors.DivisionByZero), hc_session(conn):
            conn.execute("SELECT 1 / 0")
        conn.rollback()
        assert one(conn, "SHOW xmlbinary") == "base64"
        with hc_session(conn):
            conn.commit()  # the session-level SET outlives the transaction
            assert one(conn, "SHOW xmlbinary") == "hex"
        assert one(conn, "SHOW xmlbinary") == "base64"
    assert trigger_log(db) == []


def test_trigger_log_insert_notifies_the_schema_channel(db, db_url):
    hc_schema(db)
    account_table(db)
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(hcschema.notify_channel(S))))
        db.execute("INSERT INTO schema1.account (name) VALUES ('Acme')")
        received = list(listener.notifies(timeout=5, stop_after=1))
    assert [(n.channel, n.payload) for n in received] == [("schema1.hc_trigger_log", "ping")]


def test_session_without_public_on_path_cannot_write(db):
    hc_schema(db)
    account_table(db)
    db.execute("SET search_path = schema1")
    with pytest.raises(
        errors.UndefinedFunction, match=r"function get_xmlbinary\(\) does not exist"
    ):
        db.execute("INSERT INTO account (name) VALUES ('Acme')")
    db.execute("SET search_path = schema1, public")
    db.execute("INSERT INTO account (name) VALUES ('Acme')")
    assert len(trigger_log(db)) == 1


def test_logger_needs_hstore_on_path(db):
    hc_schema(db)
    account_table(db)
    db.execute("DROP TRIGGER hc_account_status_trigger ON schema1.account")
    db.execute("SET search_path = schema1")
    with pytest.raises(errors.UndefinedFunction, match="hstore"):
        db.execute("INSERT INTO account (name) VALUES ('Acme')")


# --- changing mappings ----------------------------------------------------------------------


def test_drop_hc_objects_keeps_data_and_stops_logging(db):
    hc_schema(db)
    account_table(db)
    db.execute("INSERT INTO schema1.account (name) VALUES ('Acme')")
    hcschema.drop_hc_objects(db, S, "account")
    hcschema.drop_hc_objects(db, S, "account")  # idempotent
    db.execute("INSERT INTO schema1.account (name) VALUES ('Globex')")
    assert db.execute("SELECT name, _hc_lastop FROM schema1.account ORDER BY id").fetchall() == [
        ("Acme", "PENDING"),
        ("Globex", None),
    ]
    assert len(trigger_log(db)) == 1
    assert hc_layout.mapped_tables(db, S) == []
    assert one(db, "SELECT to_regprocedure('schema1.hc_account_logger()')") is None


def test_add_columns_keeps_logging_with_the_new_column(db):
    hc_schema(db)
    account_table(db)
    db.execute("INSERT INTO schema1.account (name) VALUES ('Acme')")
    hcschema.add_columns(db, S, "account", {"industry": "varchar(255)"})
    hcschema.add_columns(db, S, "account", {"industry": "varchar(255)"})
    db.execute("INSERT INTO schema1.account (name, industry) VALUES ('Globex', 'Energy')")
    db.execute("UPDATE schema1.account SET industry = 'Retail' WHERE name = 'Acme'")
    rows = trigger_log(db)
    assert [r["state"] for r in rows] == ["NEW", "NEW", "NEW"]
    assert rows[1]["values"]["industry"] == "Energy"
    assert rows[2]["values"] == {"industry": "Retail"}


def test_table_named_case_works_everywhere(db):
    hc_schema(db)
    create_mapped_table(
        db, S, "case", DEMO_TABLES["case"], access="read_write", indexes=DEMO_INDEXES
    )
    db.execute("INSERT INTO schema1.\"case\" (subject) VALUES ('Broken')")
    db.execute("UPDATE schema1.\"case\" SET status = 'Open'")
    hcschema.add_columns(db, S, "case", {"origin": "varchar(40)"})
    hcschema.set_access(db, S, "case", "read_only")
    db.execute('DELETE FROM schema1."case"')
    assert [(r["state"], r["action"], r["table_name"]) for r in trigger_log(db)] == [
        ("NEW", "INSERT", "case"),
        ("NEW", "UPDATE", "case"),
        ("READONLY", "DELETE", "case"),
    ]
    assert hc_layout.mapped_tables(db, S) == ["case"]
    assert one(db, "SELECT to_regclass('schema1.hcu_idx_case_sfid')") is not None
    hcschema.drop_mapped_table(db, S, "case")
    assert one(db, "SELECT to_regclass('schema1.\"case\"')") is None
    assert one(db, "SELECT to_regprocedure('schema1.hc_case_status()')") is None
    assert hc_layout.mapped_tables(db, S) == []


def test_names_and_types_are_validated(db):
    hc_schema(db)
    for schema, table, columns, access, indexes in [
        ("Schema1", "account", {}, "read_write", {}),
        (S, 'account"; drop', {}, "read_write", {}),
        (S, "account", {"1name": "text"}, "read_write", {}),
        (S, "account", {"name": "text; DROP TABLE x"}, "read_write", {}),
        (S, "account", {"name": "text"}, "write_only", {}),
        (S, "account", {"name": "text"}, "read_write", {"missing": False}),
        (S, "account", {"sfid": "text"}, "read_write", {}),
    ]:
        with pytest.raises(ValueError):
            create_mapped_table(db, schema, table, columns, access=access, indexes=indexes)
    with pytest.raises(ValueError):
        hcschema.add_columns(db, S, "account", {"x": "int) --"})
    assert hc_layout.mapped_tables(db, S) == []


def test_table_name_for():
    assert hcschema.table_name_for("My_Obj__c") == "my_obj__c"
    assert hcschema.table_name_for("Case") == "case"
    for bad in ("", "My-Obj", "1Account", "A" * 64):
        with pytest.raises(ValueError):
            hcschema.table_name_for(bad)


# --- objects HC does not manage ---------------------------------------------------------------


def demo_schema(db: psycopg.Connection, db_name: str) -> tuple[str, str, list[str]]:
    hc_schema(db)
    for table, columns in DEMO_TABLES.items():
        indexes = dict(DEMO_INDEXES)
        if "external_key__c" in columns:
            indexes["external_key__c"] = True
        create_mapped_table(db, S, table, columns, access="read_write", indexes=indexes)
    app_role, readonly_role = f"{db_name}_app", f"{db_name}_readonly"
    created = demo_objects(db, schema=S, app_role=app_role, readonly_role=readonly_role)
    return app_role, readonly_role, created


def test_demo_objects_are_in_the_catalogs(db, db_name):
    app_role, readonly_role, created = demo_schema(db, db_name)
    again = demo_objects(db, schema=S, app_role=app_role, readonly_role=readonly_role)
    assert len(again) == len(created) == 11

    assert db.execute(
        "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN (%s, %s) ORDER BY rolname",
        (app_role, readonly_role),
    ).fetchall() == [(app_role, True), (readonly_role, False)]
    assert "lower((billingcity)::text)" in one(
        db,
        "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = %s",
        (S, "account_billingcity_idx"),
    )
    views = db.execute(
        "SELECT schemaname, viewname FROM pg_views"
        " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
    ).fetchall()
    assert views == [("reporting", "open_opportunities"), (S, "account_contacts")]
    assert db.execute("SELECT schemaname, matviewname FROM pg_matviews").fetchall() == [
        ("reporting", "case_counts")
    ]
    functions = dict(
        db.execute(
            "SELECT proname, prosqlbody IS NOT NULL FROM pg_proc"
            " WHERE pronamespace = 'public'::regnamespace"
            " AND proname IN ('contact_count', 'account_display_name', 'contact_touch')"
        )
    )
    assert functions == {
        "contact_count": False,
        "account_display_name": True,
        "contact_touch": False,
    }
    assert db.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'schema1.contact'::regclass"
        " AND NOT tgisinternal AND tgname NOT LIKE 'hc\\_%'"
    ).fetchall() == [("contact_touch",)]
    assert db.execute(
        "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint"
        " WHERE contype = 'f'"
    ).fetchall() == [("app_order", "schema1.account")]
    for table in DEMO_TABLES:
        target = sql.Identifier(S, table).as_string(db)
        assert one(db, "SELECT has_table_privilege(%s, %s, 'SELECT')", (readonly_role, target))
        assert not one(db, "SELECT has_table_privilege(%s, %s, 'INSERT')", (readonly_role, target))
    assert one(db, "SELECT has_schema_privilege(%s, %s, 'USAGE')", (readonly_role, S))
    assert trigger_log(db) == []  # planting the objects wrote nothing to mapped tables


def test_demo_objects_bind_the_way_the_swap_must_handle(db, db_name):
    demo_schema(db, db_name)
    db.execute(
        "INSERT INTO schema1.account (name, billingcity, sfid)"
        " VALUES ('Acme', 'Paris', '001000000000001AAA')"
    )
    db.execute(
        "INSERT INTO schema1.contact (lastname, accountid, sfid)"
        " VALUES ('Doe', '001000000000001AAA', '003000000000001AAA')"
    )
    # BEGIN ATOMIC is bound to schema1.account: it works with no schema1 on the path.
    assert one(db, "SELECT public.account_display_name('001000000000001AAA')") == "Acme (Paris)"
    # plpgsql resolves "contact" through the caller's path at run time.
    with pytest.raises(errors.UndefinedTable):
        db.execute("SELECT public.contact_count('001000000000001AAA')")
    db.execute("SET search_path = schema1, public")
    assert one(db, "SELECT public.contact_count('001000000000001AAA')") == 1
    before = len(trigger_log(db))
    db.execute("UPDATE schema1.contact SET email = 'doe@example.com'")
    assert len(trigger_log(db)) == before + 1  # the custom trigger adds no log row
    assert one(db, "SELECT operation FROM public.contact_activity") == "UPDATE"
    with pytest.raises(errors.ForeignKeyViolation):
        db.execute("INSERT INTO public.app_order (account_sfid) VALUES ('001000000000009AAA')")
    with pytest.raises(errors.DependentObjectsStillExist):
        hcschema.drop_mapped_table(db, S, "account")
