"""Dropping hc2's schema: refused while anything outside it depends on it, complete otherwise."""

from __future__ import annotations

import pytest

from swapbot.database import dropschema
from swapbot.database._common import UserError, schema_exists


@pytest.fixture
def new_schema(db):
    db.execute(
        """
        CREATE SCHEMA salesforce2;
        CREATE TABLE salesforce2.account (id serial PRIMARY KEY, name text);
        CREATE TABLE salesforce2._trigger_log (id serial PRIMARY KEY, created_at timestamptz DEFAULT now());
        CREATE VIEW salesforce2.named AS SELECT name FROM salesforce2.account;
        CREATE FUNCTION salesforce2.touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
        CREATE TRIGGER touch BEFORE UPDATE ON salesforce2.account FOR EACH ROW EXECUTE FUNCTION salesforce2.touch();
        ALTER TABLE salesforce2.account ENABLE ROW LEVEL SECURITY;
        CREATE POLICY everyone ON salesforce2.account USING (true);
        CREATE TABLE public.keep (id int);
        """
    )
    return "salesforce2"


def test_a_self_contained_schema_has_no_outside_dependents_and_drops(db, new_schema):
    assert dropschema.outside_dependents(db, new_schema) == []
    assert dropschema.tables(db, new_schema) == ["_trigger_log", "account"]
    dropschema.drop(db, new_schema)
    assert not schema_exists(db, new_schema)
    assert db.execute("SELECT to_regclass('public.keep') IS NOT NULL").fetchone()[0]
    dropschema.drop(db, new_schema)  # already gone: already dropped


@pytest.mark.parametrize(
    "outside, named",
    [
        ("CREATE VIEW public.v AS SELECT * FROM salesforce2.account", "view public.v"),
        (
            "CREATE TABLE public.orders (account_id int REFERENCES salesforce2.account (id))",
            "orders_account_id_fkey on public.orders",
        ),
        (
            "CREATE FUNCTION public.label(a salesforce2.account) RETURNS text LANGUAGE sql "
            "AS 'SELECT $1.name'",
            "function public.label(salesforce2.account)",
        ),
        (
            "CREATE TRIGGER t AFTER INSERT ON public.keep FOR EACH ROW "
            "EXECUTE FUNCTION salesforce2.touch()",
            "trigger t on public.keep",
        ),
        (
            "CREATE FUNCTION salesforce2.one() RETURNS int LANGUAGE sql AS 'SELECT 1'; "
            "CREATE TABLE public.t2 (x int DEFAULT salesforce2.one())",
            "for public.t2.x",
        ),
    ],
)
def test_anything_outside_that_depends_on_it_refuses_the_drop(db, new_schema, outside, named):
    db.execute(outside)
    found = dropschema.outside_dependents(db, new_schema)
    assert any(named in f for f in found), found
    with pytest.raises(UserError) as exc:
        dropschema.drop(db, new_schema)
    assert named in str(exc.value)
    assert schema_exists(db, new_schema)
    assert dropschema.tables(db, new_schema) == ["_trigger_log", "account"]


def test_a_bad_schema_name_is_refused(db):
    with pytest.raises(UserError):
        dropschema.drop(db, "x; DROP SCHEMA public")
