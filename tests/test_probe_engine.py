"""The engine plays what `swapbot probe` found: each probed variant changes what a step sends,
and `plan show` marks every assumption confirmed, contradicted or unknown.

Each test runs a step against the sandbox playing a variant, once with the probe's findings
(the step works) and, where the default would fail there, once without (it does not).
"""

from __future__ import annotations

import pytest

from swapbot.heroku import BadRequest
from swapbot.heroku.probed import Finding, Plays, ProbeResults
from swapbot.swap import assumed
from swapbot.testing.services import wait_until
from tests.steps_alone import Alone
from tests.test_steps_prep import has_the_new_fields


def found(**variants: str) -> ProbeResults:
    """Probe results with the given variants (keys with `_` for `-`), each confirmed or
    contradicted as the probe would say."""
    findings = {}
    for key, variant in variants.items():
        key = key.replace("_", "-")
        verdict = "contradicted" if variant in CONTRADICTS.get(key, ()) else "confirmed"
        findings[key] = Finding(
            key=key, kind="change", verdict=verdict, observed=f"saw {variant}", variant=variant
        )
    return ProbeResults(findings=findings)


CONTRADICTS = {
    "put-mapping-body": ("upsert-on-mapping",),
    "import-accepts-added-fields": ("false",),
    "export-applied-at": ("true",),
    "poll-soon-after-resume": ("false",),
    "mappings-listed-by-deep": ("false",),
}


def test_plays_follow_the_findings_and_default_to_the_documented_guess():
    assert Plays.from_results(None) == Plays()
    plays = Plays.from_results(
        found(
            put_mapping_body="upsert-on-mapping",
            import_accepts_added_fields="false",
            export_applied_at="true",
            poll_soon_after_resume="true",
        )
    )
    assert plays == Plays(
        put_body="upsert-on-mapping",
        import_added_fields=False,
        import_keeps_applied_at=False,
        resume_polls_at_once=True,
    )
    # an unknown finding is not played
    results = found(put_mapping_body="upsert-on-mapping")
    results.findings["put-mapping-body"].verdict = "unknown"
    assert Plays.from_results(results).put_body == "create-plus-revision"


@pytest.mark.parametrize("body", ["create-plus-revision", "upsert-on-mapping"])
def test_add_columns_sends_the_body_the_probe_found(sandbox_factory, db_url, db_name, body):
    sandbox = sandbox_factory(assumptions={"put_mapping_body": body})
    alone = Alone(sandbox, db_url, db_name)
    alone.add_hc2("synced", with_fields=False)
    if body != "create-plus-revision":
        with pytest.raises(BadRequest):  # without the probe: the documented body, refused here
            alone.act("add-columns")
    alone.probe = found(put_mapping_body=body)
    alone.do("add-columns")
    wait_until(lambda: has_the_new_fields(alone), what="the new fields on hc2")


def test_import_leaves_applied_at_out_when_the_probe_saw_import_refuse_it(
    sandbox_factory, db_url, db_name
):
    sandbox = sandbox_factory(assumptions={"import_rejects_applied_at": True})
    alone = Alone(sandbox, db_url, db_name)
    alone.add_hc2("authorized")
    alone.export()
    with pytest.raises(BadRequest, match="applied_at"):
        alone.act("import")
    alone.probe = found(export_applied_at="true")
    alone.do("import")
    assert {m.object_name for m in alone.hc("hc2").mappings} == {"Account", "Contact"}


def test_import_leaves_the_new_fields_out_when_the_probe_saw_import_drop_them(
    sandbox, db_url, db_name
):
    from swapbot.swap.steps.prep import import_document

    alone = Alone(sandbox, db_url, db_name)
    alone.export()
    added = {f for fields in alone.plan.mappings.values() for f in fields}

    def fields(doc):
        return {f for m in doc.mappings for f in m.config.fields}

    assert added <= fields(import_document(alone.run("import")))  # the shortcut
    alone.probe = found(import_accepts_added_fields="false")
    assert not added & fields(import_document(alone.run("import")))


def test_the_prediction_counts_a_prompt_first_poll_when_the_probe_saw_one(sandbox, db_url, db_name):
    from swapbot.swap import predict

    alone = Alone(sandbox, db_url, db_name)
    alone.add_hc2("authorized")
    live = alone.run("verify").live
    slow = predict._verify("verify", alone.plan, live, {})
    assert slow.source != "probed"
    alone.probe = found(poll_soon_after_resume="true")
    quick = predict._verify("verify", alone.plan, alone.run("verify").live, {})
    assert quick.source == "probed" and quick.seconds < slow.seconds


def test_the_assumption_table_has_every_assumption_and_names_blockers():
    from swapbot.heroku.assumptions import ASSUMPTIONS

    rows = assumed.rows(found(counts_field_name="db", mappings_listed_by_deep="false"))
    assert [r.key for r in rows] == [a.key for a in ASSUMPTIONS]
    by_key = {r.key: r for r in rows}
    assert by_key["counts-field-name"].verdict == "confirmed"
    assert by_key["mappings-listed-by-deep"].verdict == "contradicted"
    assert by_key["delete-mapping-table"].verdict == "unknown"
    (why,) = assumed.blockers(found(mappings_listed_by_deep="false"))
    assert why.startswith("mappings-listed-by-deep") and "do not swap" in why
    # contradicted but handled by the runbook: not a blocker
    assert assumed.blockers(found(put_mapping_body="upsert-on-mapping")) == []


def test_a_probe_file_that_cannot_be_read_stops_preflight_but_not_the_rest(tmp_path):
    from swapbot.heroku.probed import load_if_present

    assert load_if_present(tmp_path / "absent.json") is None
    bad = tmp_path / "swapbot-probe.json"
    bad.write_text("{not json")
    results = load_if_present(bad)
    assert results is not None and results.problem and "cannot be read" in results.problem
    assert Plays.from_results(results) == Plays()  # the documented guesses meanwhile
    (why,) = assumed.blockers(results)
    assert "cannot be read" in why
    # merged with later findings, the problem stays until the file is mended
    assert found(counts_field_name="db").merged(results).problem == results.problem


def test_once_preflight_recorded_the_probe_the_swap_plays_that_record(
    sandbox, db_url, db_name, redis_prefix
):
    """A new probe (or a redeploy) mid-swap changes nothing of what later steps send."""
    import redis

    from swapbot.swap.engine import Engine
    from swapbot.swap.live import Live
    from swapbot.swap.record import PROBE
    from swapbot.swap.store import Store
    from swapbot.testing.services import REDIS_TEST_URL
    from swapbot.testing.swaps import demo_plan

    alone = Alone(sandbox, db_url, db_name)
    in_file = found(put_mapping_body="create-plus-revision")

    def live_factory(plan, events, dry_run):
        return Live(plan, alone.connect, alone.platform, db_url, events, probe=in_file)

    store = Store(redis.Redis.from_url(REDIS_TEST_URL), redis_prefix)
    engine = Engine(store, live_factory)
    plan = demo_plan(db_name)
    assert engine.live_factory(plan, engine.emitter, True).plays.put_body == "create-plus-revision"
    recorded = found(put_mapping_body="upsert-on-mapping")
    store.redis.hset(store.swap_key(plan.swap_id, "records"), PROBE, recorded.model_dump_json())
    live = engine.live_factory(plan, engine.emitter, True)
    assert live.plays.put_body == "upsert-on-mapping" and live.probe == recorded
