"""The sandbox's own state, kept in schema `_hcsandbox` of the database it simulates.

Keeping it in PostgreSQL (not in memory) means a restarted sandbox carries on where it was, and
tests can look at exactly what Heroku would know.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

SCHEMA = "_hcsandbox"

DDL = """
CREATE SCHEMA IF NOT EXISTS _hcsandbox;
CREATE TABLE IF NOT EXISTS _hcsandbox.setting (
    key text PRIMARY KEY,
    value jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS _hcsandbox.app (
    name text PRIMARY KEY,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    region text NOT NULL DEFAULT 'us',
    maintenance boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS _hcsandbox.config_var (
    app text NOT NULL REFERENCES _hcsandbox.app(name),
    key text NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (app, key)
);
CREATE TABLE IF NOT EXISTS _hcsandbox.addon (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL UNIQUE,
    app text NOT NULL REFERENCES _hcsandbox.app(name),
    service text NOT NULL,
    plan text NOT NULL,
    state text NOT NULL,
    ready_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Which apps an add-on is attached to, under which config var prefix (DATABASE, ...); a
-- pooler attachment has namespace connection-pooling:default.
CREATE TABLE IF NOT EXISTS _hcsandbox.attachment (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    addon uuid NOT NULL REFERENCES _hcsandbox.addon(id) ON DELETE CASCADE,
    app text NOT NULL REFERENCES _hcsandbox.app(name),
    name text NOT NULL,
    namespace text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app, name)
);
CREATE TABLE IF NOT EXISTS _hcsandbox.formation (
    app text NOT NULL REFERENCES _hcsandbox.app(name),
    type text NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    quantity int NOT NULL,
    size text NOT NULL DEFAULT 'standard-1X',
    command text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app, type)
);
CREATE TABLE IF NOT EXISTS _hcsandbox.dyno (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    app text NOT NULL,
    type text NOT NULL,
    num int NOT NULL,
    state text NOT NULL,
    size text NOT NULL,
    ready_at timestamptz,
    stop_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app, type, num)
);
CREATE TABLE IF NOT EXISTS _hcsandbox.connection (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    _id serial,
    addon_id uuid NOT NULL REFERENCES _hcsandbox.addon(id),
    app text NOT NULL,
    schema_name text,
    db_key text,
    state text NOT NULL DEFAULT 'NEW',
    next_state text,
    next_at timestamptz,
    pending_import jsonb,
    features jsonb NOT NULL DEFAULT '{}',
    settings jsonb NOT NULL DEFAULT '{}',
    sf_info jsonb,
    linked_users text[] NOT NULL DEFAULT '{}',
    authorize_state text,
    logplex_log_enabled boolean NOT NULL DEFAULT false,
    last_write_activity timestamptz,
    auth_updated timestamptz,
    resumed_at timestamptz,
    diagnose_fail jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Databases set up before the column existed.
ALTER TABLE _hcsandbox.connection ADD COLUMN IF NOT EXISTS resumed_at timestamptz;
-- where HC sends the browser once authorized (authorize_url's `next`)
ALTER TABLE _hcsandbox.connection ADD COLUMN IF NOT EXISTS authorize_next text;
-- checks a test forces to fail in diagnose (POST /_sandbox/connections/{key}/diagnose)
ALTER TABLE _hcsandbox.connection ADD COLUMN IF NOT EXISTS diagnose_fail jsonb NOT NULL DEFAULT '[]';
CREATE TABLE IF NOT EXISTS _hcsandbox.mapping (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    _id serial,
    connection_id uuid NOT NULL REFERENCES _hcsandbox.connection(id) ON DELETE CASCADE,
    object_name text NOT NULL,
    table_name text NOT NULL,
    state text NOT NULL DEFAULT 'INITIAL',
    state_description text NOT NULL DEFAULT 'OK',
    config jsonb NOT NULL,
    revision int NOT NULL DEFAULT 1,
    applied_at timestamptz NOT NULL DEFAULT now(),
    load_kind text,
    load_after bigint NOT NULL DEFAULT 0,
    state_since timestamptz NOT NULL DEFAULT now(),
    last_poll_at timestamptz,
    times jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, object_name)
);
-- Mappings deleted on a connection, so a repeated DELETE can answer 204 when the sandbox plays
-- an idempotent delete (assumption delete-mapping-repeat).
CREATE TABLE IF NOT EXISTS _hcsandbox.deleted_mapping (
    id uuid PRIMARY KEY,
    connection_id uuid NOT NULL REFERENCES _hcsandbox.connection(id) ON DELETE CASCADE,
    deleted_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS _hcsandbox.sf_object (
    name text PRIMARY KEY,
    spec jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS _hcsandbox.sf_record (
    seq bigserial,
    object_name text NOT NULL,
    sfid varchar(18) NOT NULL,
    data jsonb NOT NULL,
    systemmodstamp timestamptz NOT NULL DEFAULT now(),
    isdeleted boolean NOT NULL DEFAULT false,
    PRIMARY KEY (object_name, sfid)
);
CREATE SEQUENCE IF NOT EXISTS _hcsandbox.sfid_seq;
CREATE INDEX IF NOT EXISTS sf_record_seq ON _hcsandbox.sf_record (object_name, seq);
CREATE INDEX IF NOT EXISTS sf_record_modstamp ON _hcsandbox.sf_record (object_name, systemmodstamp);
CREATE TABLE IF NOT EXISTS _hcsandbox.export_log (
    object_name text NOT NULL,
    field text NOT NULL,
    PRIMARY KEY (object_name, field)
);
CREATE TABLE IF NOT EXISTS _hcsandbox.notification (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    connection_id uuid NOT NULL,
    event_type text NOT NULL,
    message text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz
);
-- Databases set up before notifications could be acknowledged.
ALTER TABLE _hcsandbox.notification ADD COLUMN IF NOT EXISTS acknowledged_at timestamptz;
-- A diagnose run (POST /connections/{id}/validations): its results, computed when it starts,
-- are served once ready_at has passed.
CREATE TABLE IF NOT EXISTS _hcsandbox.validation_run (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    connection_id uuid NOT NULL REFERENCES _hcsandbox.connection(id) ON DELETE CASCADE,
    ready_at timestamptz NOT NULL,
    result jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS _hcsandbox.request_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    api text NOT NULL,
    method text NOT NULL,
    path text NOT NULL,
    query text NOT NULL DEFAULT '',
    status int,
    fault text,
    body jsonb
);
"""


def install(conn) -> None:
    conn.execute(DDL)


def drop(conn) -> None:
    conn.execute("DROP SCHEMA IF EXISTS _hcsandbox CASCADE")


def get_setting(conn, key: str, default: Any = None) -> Any:
    row = conn.execute("SELECT value FROM _hcsandbox.setting WHERE key = %s", (key,)).fetchone()
    return default if row is None else row[0]


def put_setting(conn, key: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO _hcsandbox.setting (key, value) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        (key, Jsonb(value)),
    )


def rows(conn, query, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return list(cur.fetchall())


def row(conn, query, params: Any = None) -> dict[str, Any] | None:
    found = rows(conn, query, params)
    return found[0] if found else None


def dumps(value: Any) -> str:
    return json.dumps(value, default=str)
