"""`swapbot probe --scratch-app`: the checks that change things, against the sandbox.

The whole scratch probe runs once per set of sandbox flags (one class each, so that the runs go
side by side), and each test reads the run that plays the variant it is about: for every
assumption the scratch checks probe, the probe must report the variant the sandbox plays. The
other classes check the safety of the probe itself: it refuses an app not marked scratch, and it
removes what it made, whatever happens in between.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import requests

from swapbot.config import Settings
from swapbot.heroku import SYNCED_STATES, ConnectClient, PlatformClient
from swapbot.probe import scratch, scratch_imports, scratch_setup
from swapbot.probe.checks import ProbeCheck
from swapbot.probe.results import Finding, ProbeResults
from swapbot.sandbox import scenarios
from swapbot.sandbox.options import Assumptions, SandboxOptions
from swapbot.sandbox.server import Sandbox
from swapbot.testing.services import TOKEN, create_database, drop_database, wait_until

APP = "acme-prod"
# Fast, but with HC's 600 s polling interval still half a minute long (longer than a run), and
# a restart's RECOVERY long enough (1.5 s) for pause-only-from-idle to pause in it.
FAST = {"speed": 20.0, "seed": 7, "org_changes_per_second": 0.0, "restart_seconds": 30.0}
WAIT = 3.0  # the probe's longest wait for a state, and its watch for a poll or a processed row
POLL = 0.05
PERSON = "probe@acme.example"
LINK_STATES = (
    "SELECT c.authorize_state FROM _hcsandbox.connection c JOIN _hcsandbox.addon a "
    "ON a.id = c.addon_id WHERE a.name LIKE 'swapbot-probe-%' AND c.authorize_state IS NOT NULL"
)

# The sets of flags a whole probe runs under. Together they play every variant of every flag
# the scratch checks probe (test_every_variant_is_played_by_a_run).
RUNS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "flipped": {
        "configure_creates_schema": False,
        "import_status": 200,
        "import_accepts_new_fields": False,
        "import_leaves_other_mappings": False,
        "import_copies_features": True,
        "import_applies_connection_block": True,
        "import_rejects_applied_at": True,
        "put_mapping_body": "upsert-on-mapping",
        "pause_resume_status": 200,
        "pause_refused_status": 409,
        "resume_polls_at_once": False,
        "abort_endpoint": True,
        "delete_drops_table": False,
        "delete_repeat_status": 204,
        "remove_addon_keeps_schema": False,
    },
    "others": {"import_status": 201, "pause_refused_status": 422},
}


@dataclass(frozen=True)
class Case:
    key: str
    flag: str
    value: Any
    variant: str
    verdict: str

    def __str__(self) -> str:
        return f"{self.key}:{self.flag}={self.value}"


CASES = [
    Case("configure-creates-schema", "configure_creates_schema", True, "true", "confirmed"),
    Case("configure-creates-schema", "configure_creates_schema", False, "false", "confirmed"),
    Case("import-status-code", "import_status", 202, "202", "confirmed"),
    Case("import-status-code", "import_status", 200, "200", "confirmed"),
    Case("import-status-code", "import_status", 201, "201", "confirmed"),
    Case("import-accepts-added-fields", "import_accepts_new_fields", True, "true", "confirmed"),
    Case(
        "import-accepts-added-fields", "import_accepts_new_fields", False, "false", "contradicted"
    ),
    Case("import-leaves-other-mappings", "import_leaves_other_mappings", True, "true", "confirmed"),
    Case(
        "import-leaves-other-mappings",
        "import_leaves_other_mappings",
        False,
        "false",
        "contradicted",
    ),
    Case("import-write-algorithm", "import_copies_features", False, "false", "confirmed"),
    Case("import-write-algorithm", "import_copies_features", True, "true", "confirmed"),
    Case("import-connection-block", "import_applies_connection_block", False, "false", "confirmed"),
    Case(
        "import-connection-block",
        "import_applies_connection_block",
        True,
        "true",
        "contradicted",
    ),
    Case("export-applied-at", "import_rejects_applied_at", False, "false", "confirmed"),
    Case("export-applied-at", "import_rejects_applied_at", True, "true", "contradicted"),
    Case(
        "put-mapping-body",
        "put_mapping_body",
        "create-plus-revision",
        "create-plus-revision",
        "confirmed",
    ),
    Case(
        "put-mapping-body",
        "put_mapping_body",
        "upsert-on-mapping",
        "upsert-on-mapping",
        "contradicted",
    ),
    Case("pause-resume-status-code", "pause_resume_status", 202, "202", "confirmed"),
    Case("pause-resume-status-code", "pause_resume_status", 200, "200", "contradicted"),
    Case("pause-only-from-idle", "pause_refused_status", 400, "400", "confirmed"),
    Case("pause-only-from-idle", "pause_refused_status", 409, "409", "confirmed"),
    Case("pause-only-from-idle", "pause_refused_status", 422, "422", "confirmed"),
    Case("poll-soon-after-resume", "resume_polls_at_once", True, "true", "confirmed"),
    Case("poll-soon-after-resume", "resume_polls_at_once", False, "false", "contradicted"),
    Case("abort-has-no-api", "abort_endpoint", False, "false", "confirmed"),
    Case("abort-has-no-api", "abort_endpoint", True, "true", "contradicted"),
    Case("delete-mapping-table", "delete_drops_table", True, "true", "confirmed"),
    Case("delete-mapping-table", "delete_drops_table", False, "false", "confirmed"),
    Case("delete-mapping-repeat", "delete_repeat_status", 404, "404", "confirmed"),
    Case("delete-mapping-repeat", "delete_repeat_status", 204, "204", "contradicted"),
    Case("remove-addon-keeps-schema", "remove_addon_keeps_schema", True, "true", "confirmed"),
    Case("remove-addon-keeps-schema", "remove_addon_keeps_schema", False, "false", "contradicted"),
]


def played(run: str) -> list[Case]:
    flags = Assumptions(**RUNS[run])
    return [case for case in CASES if getattr(flags, case.flag) == case.value]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames and metafunc.cls is not None:
        metafunc.parametrize("case", played(metafunc.cls.RUN), ids=str)


def _values(flag: str) -> set[Any]:
    annotation = Assumptions.model_fields[flag].annotation
    if annotation is bool:
        return {True, False}
    assert get_origin(annotation) is Literal, flag
    return set(get_args(annotation))


def test_every_variant_is_played_by_a_run():
    """Every value of every flag the scratch checks probe has a case, and a run plays it."""
    flags = {case.flag for case in CASES}
    for flag in flags:
        assert {c.value for c in CASES if c.flag == flag} == _values(flag), flag
    covered = {str(case) for run in RUNS for case in played(run)}
    assert covered == {str(case) for case in CASES}


def test_the_checks_are_listed_once_each_and_each_settles_an_assumption():
    from swapbot.heroku.assumptions import ASSUMPTIONS

    keys = [c.key for c in scratch.SCRATCH_CHECKS]
    assert len(keys) == len(set(keys))
    assert set(keys) <= {a.key for a in ASSUMPTIONS}
    assert all(c.kind == "change" for c in scratch.SCRATCH_CHECKS)
    assert {case.key for case in CASES} <= set(keys)


# --- a sandbox of one's own, and one probe run in it -----------------------------------------------


@contextmanager
def own_sandbox(**options: Any) -> Iterator[tuple[Sandbox, str]]:
    """A sandbox on a database of its own (for a class's whole run), stopped and dropped after."""
    name = f"swapbot_t_{uuid.uuid4().hex[:10]}"
    url = create_database(name)
    try:
        scenarios.load(url, scenarios.get("small"))
        sb = Sandbox(url, SandboxOptions(**{**FAST, **options})).start()
        try:
            yield sb, url
        finally:
            sb.stop()
    finally:
        drop_database(name)


def settings_for(sb: Sandbox) -> Settings:
    return Settings(
        heroku_api_token=TOKEN,
        heroku_connect_central_url=sb.central_url,
        heroku_api_url=sb.platform_url,
    )


def platform(sb: Sandbox) -> PlatformClient:
    return PlatformClient(TOKEN, sb.platform_url)


def open_link(url: str) -> None:
    """The person: opens the authorize link and logs in to Salesforce."""
    requests.get(url, params={"username": PERSON}, timeout=5).raise_for_status()


def addon_names(sb: Sandbox) -> set[str]:
    return {a.name for a in platform(sb).list_addons(APP)}


def probe_schemas(db_url: str) -> set[str]:
    with psycopg.connect(db_url, autocommit=True) as db:
        rows = db.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'swapbot\\_probe\\_%'"
        ).fetchall()
    return {r[0] for r in rows}


def scratch_mark(db_url: str) -> str | None:
    with psycopg.connect(db_url, autocommit=True) as db:
        row = db.execute(
            "SELECT value FROM _hcsandbox.config_var WHERE app = %s AND key = %s",
            (APP, scratch.SCRATCH_MARK),
        ).fetchone()
    return None if row is None else row[0]


@dataclass
class Probed:
    results: ProbeResults
    told: list[Finding]
    links: list[str]
    db_url: str
    addons_before: set[str]
    addons_after: set[str]
    schemas_after: set[str]
    mark_after: str | None
    seconds: float

    def finding(self, key: str) -> Finding:
        found = self.results.finding(key)
        assert found is not None, f"no finding for {key}"
        return found


def probe_in(sb: Sandbox, db_url: str, *, also: Any = None, **kwargs: Any) -> Probed:
    """Run the whole scratch probe; `also(finding)` is told each finding too."""
    told: list[Finding] = []

    def tell(finding: Finding) -> None:
        told.append(finding)
        if also is not None:
            also(finding)

    links: list[str] = []
    person = kwargs.pop("authorize", open_link)

    def authorize(url: str) -> None:
        links.append(url)
        person(url)

    before = addon_names(sb)
    started = time.monotonic()
    results = scratch.run(
        settings_for(sb),
        APP,
        told=tell,
        authorize=authorize,
        wait_seconds=WAIT,
        poll_seconds=POLL,
        **kwargs,
    )
    return Probed(
        results=results,
        told=told,
        links=links,
        db_url=db_url,
        addons_before=before,
        addons_after=addon_names(sb),
        schemas_after=probe_schemas(db_url),
        mark_after=scratch_mark(db_url),
        seconds=time.monotonic() - started,
    )


@pytest.fixture(scope="class")
def probed(request: pytest.FixtureRequest) -> Iterator[Probed]:
    """The class's whole scratch probe, run once under the flags of RUNS[cls.RUN]."""
    cls = request.cls
    with own_sandbox(assumptions=RUNS[cls.RUN]) as (sb, url):
        yield cls.probe(sb, url)


class _WholeRun:
    """One whole scratch probe under the flags of RUNS[RUN], shared by the class's tests."""

    RUN = "defaults"

    @classmethod
    def probe(cls, sb: Sandbox, db_url: str) -> Probed:
        platform(sb).update_config_vars(APP, {scratch.SCRATCH_MARK: "true"})
        return probe_in(sb, db_url)

    def test_the_probe_reports_the_variant_the_sandbox_plays(self, probed: Probed, case: Case):
        found = probed.finding(case.key)
        assert (found.variant, found.verdict) == (case.variant, case.verdict), found.observed

    def test_every_check_ran_in_order_and_was_told(self, probed: Probed):
        assert [f.key for f in probed.told] == [c.key for c in scratch.SCRATCH_CHECKS]
        assert list(probed.results.findings) == [c.key for c in scratch.SCRATCH_CHECKS]
        assert probed.results.scratch_app == APP
        assert probed.results.app is None  # a scratch run says nothing of the production app

    def test_what_the_probe_made_is_gone(self, probed: Probed):
        assert probed.addons_after == probed.addons_before
        assert not any(a.startswith("swapbot-probe-") for a in probed.addons_after)
        assert probed.schemas_after == set()


class TestDefaults(_WholeRun):
    RUN = "defaults"

    @classmethod
    def probe(cls, sb: Sandbox, db_url: str) -> Probed:
        assert scratch_mark(db_url) is None
        return probe_in(sb, db_url, forced=True)

    def test_forced_marks_the_app_as_scratch(self, probed: Probed):
        assert probed.mark_after == "true"

    @pytest.mark.parametrize(
        ("key", "verdict", "seen"),
        [
            ("restart-and-authorize-url-repeatable", "confirmed", "two different links"),
            ("delete-mapping-trigger-log", "confirmed", "orphaned"),
            ("formation-dyno-size", "confirmed", "accepted (200)"),
            ("rate-limit-before-processing", "unknown", "not probed"),
            ("last-write-activity", "unknown", "unchanged"),
            ("hc-session-credentials", "unknown", "sessions with this credential's user"),
        ],
    )
    def test_the_checks_without_a_sandbox_flag(self, probed: Probed, key, verdict, seen):
        found = probed.finding(key)
        assert found.verdict == verdict, found.observed
        assert seen in found.observed

    def test_evidence_has_the_requests_and_answers(self, probed: Probed):
        imported = probed.finding("import-status-code").evidence
        post = [e for e in imported if e.method == "POST" and e.url.endswith("/actions/import")]
        assert post and post[0].status == 202
        assert post[0].request and '"mappings"' in post[0].request
        assert post[0].response and "Import started" in post[0].response
        # Made during the setup, and put back on the record for the check.
        configured = probed.finding("configure-creates-schema").evidence
        assert any(e.method == "PATCH" and "/connections/" in e.url for e in configured)
        links = probed.finding("restart-and-authorize-url-repeatable").evidence
        assert sum(e.url.endswith("/authorize_url") for e in links) == 2
        assert sum(e.url.endswith("/actions/restart") for e in links) == 2
        for key in ("delete-mapping-repeat", "put-mapping-body", "pause-only-from-idle"):
            assert probed.finding(key).evidence, key
        # The abort is sent raw, on the client's session: on the record all the same.
        aborted = probed.finding("abort-has-no-api").evidence
        post = [e for e in aborted if e.method == "POST" and e.url.endswith("/actions/abort")]
        assert [e.status for e in post] == [404]

    def test_no_finding_tells_the_authorize_link(self, probed: Probed):
        """The link carries the OAuth state: it goes to the person, not into the findings."""
        (link,) = probed.links
        state = parse_qs(urlsplit(link).query)["state"][0]
        for found in probed.results.findings.values():
            assert link not in found.observed and state not in found.observed, found.key

    def test_no_secret_is_kept(self, probed: Probed):
        text = probed.results.model_dump_json()
        assert TOKEN not in text
        assert probed.db_url not in text
        assert "postgresql://" not in text
        assert all(
            e.request is None and e.response == "(not kept: config vars)"
            for f in probed.results.findings.values()
            for e in f.evidence
            if "/config-vars" in e.url
        )

    def test_the_results_file_round_trips(self, probed: Probed, tmp_path: Path):
        path = tmp_path / "probe.json"
        probed.results.save(path)
        assert ProbeResults.load(path).variant("import-status-code") == "202"


class TestFlipped(_WholeRun):
    RUN = "flipped"

    def test_the_mark_set_beforehand_is_respected(self, probed: Probed):
        assert probed.mark_after == "true"


class TestOthers(_WholeRun):
    RUN = "others"


# --- the probe's own safety -------------------------------------------------------------------------


class TestRefusal:
    def test_an_app_not_marked_scratch_is_refused_and_nothing_is_made(
        self, sandbox_factory, db_url
    ):
        sb = sandbox_factory(**FAST)
        before = addon_names(sb)
        with pytest.raises(scratch.NotScratch, match=r"acme-prod.*SWAPBOT_SCRATCH=true"):
            scratch.run(settings_for(sb), APP, authorize=open_link, wait_seconds=WAIT)
        assert addon_names(sb) == before
        assert scratch_mark(db_url) is None
        assert probe_schemas(db_url) == set()

    def test_a_mark_other_than_true_is_refused(self, sandbox_factory):
        sb = sandbox_factory(**FAST)
        platform(sb).update_config_vars(APP, {scratch.SCRATCH_MARK: "yes"})
        with pytest.raises(scratch.NotScratch):
            scratch.run(settings_for(sb), APP, authorize=open_link, wait_seconds=WAIT)

    def test_an_addon_the_app_does_not_have_is_refused(self, sandbox_factory):
        sb = sandbox_factory(**FAST)
        platform(sb).update_config_vars(APP, {scratch.SCRATCH_MARK: "true"})
        with pytest.raises(scratch.NotScratch, match="not an add-on of acme-prod"):
            scratch.run(settings_for(sb), APP, addon="hc-elsewhere", wait_seconds=WAIT)

    def test_an_app_the_token_cannot_see_is_refused_plainly(self, sandbox_factory):
        sb = sandbox_factory(**FAST)
        with pytest.raises(scratch.NotScratch, match="no app acme-nowhere visible to this token"):
            scratch.run(settings_for(sb), "acme-nowhere", forced=True, wait_seconds=WAIT)

    def test_the_command_line_refuses_too(self, sandbox_factory, monkeypatch, tmp_path, capsys):
        sb = sandbox_factory(**FAST)
        env(monkeypatch, sb, tmp_path / "probe.json")
        from swapbot.cli import main

        assert main(["probe", "--scratch-app", APP]) == 2
        assert "--i-know-this-is-scratch" in capsys.readouterr().err
        assert not (tmp_path / "probe.json").exists()


def only(monkeypatch: pytest.MonkeyPatch, *keys: str) -> list[str]:
    """Run only these scratch checks (in their order): for tests about the probe itself."""
    chosen = tuple(c for c in scratch.SCRATCH_CHECKS if c.key in keys)
    assert len(chosen) == len(keys)
    monkeypatch.setattr(scratch, "SCRATCH_CHECKS", chosen)
    return [c.key for c in chosen]


def blows_up(ctx: Any) -> Any:
    raise RuntimeError("a check went wrong")


class TestCleanUp:
    def test_a_check_that_blows_up_is_unknown_and_the_probe_goes_on_and_cleans_up(
        self, sandbox_factory, db_url, monkeypatch
    ):
        sb = sandbox_factory(**FAST)
        platform(sb).update_config_vars(APP, {scratch.SCRATCH_MARK: "true"})
        before = addon_names(sb)
        checks = scratch.SCRATCH_CHECKS
        # After the imports: the schema has tables of the probe's mappings.
        cut = [c.key for c in checks].index("import-leaves-other-mappings") + 1
        boom = ProbeCheck("boom", "change", blows_up, "raise")
        after = next(c for c in checks if c.key == "pause-resume-status-code")
        monkeypatch.setattr(scratch, "SCRATCH_CHECKS", (*checks[:cut], boom, after))
        made: list[str] = []
        probed = probe_in(sb, db_url, also=lambda f: made.extend(probe_schemas(db_url)))
        found = probed.finding("boom")
        assert found.verdict == "unknown"
        assert "could not check" in found.observed and "a check went wrong" in found.observed
        assert list(probed.results.findings) == [c.key for c in (*checks[:cut], boom, after)]
        assert probed.finding("import-status-code").verdict == "confirmed"
        assert probed.finding("pause-resume-status-code").verdict == "confirmed"
        assert made and all(s.startswith("swapbot_probe_") for s in made)
        assert addon_names(sb) == before
        assert probe_schemas(db_url) == set()

    def test_a_sandbox_fault_is_a_finding_and_the_probe_still_cleans_up(
        self, sandbox_factory, db_url
    ):
        sb = sandbox_factory(**FAST, faults=1.0, faults_only="actions/import", fault_kinds=("500",))
        platform(sb).update_config_vars(APP, {scratch.SCRATCH_MARK: "true"})
        probed = probe_in(sb, db_url)
        found = probed.finding("import-status-code")
        assert (found.verdict, found.variant) == ("unknown", None)
        assert "500" in found.observed
        assert probed.finding("pause-only-from-idle").verdict == "confirmed"
        assert probed.addons_after == probed.addons_before
        assert probed.schemas_after == set()

    def test_a_failed_setup_removes_the_addon_and_never_tells_the_link(
        self, sandbox_factory, db_url
    ):
        sb = sandbox_factory(**FAST)
        platform(sb).update_config_vars(APP, {scratch.SCRATCH_MARK: "true"})
        before = addon_names(sb)
        links: list[str] = []

        def nobody_comes(url: str) -> None:
            assert addon_names(sb) - before  # the add-on was made, and its schema
            assert probe_schemas(db_url)
            links.append(url)
            raise RuntimeError(f"nobody opened {url}")

        with pytest.raises(scratch.SetupFailed, match="nobody opened") as failed:
            scratch.run(settings_for(sb), APP, authorize=nobody_comes, wait_seconds=WAIT)
        (link,) = links
        state = parse_qs(urlsplit(link).query)["state"][0]
        assert link not in str(failed.value) and state not in str(failed.value)
        assert addon_names(sb) == before
        assert probe_schemas(db_url) == set()

    def test_a_database_out_of_reach_is_a_setup_failure_and_the_addon_is_removed(
        self, sandbox_factory, db_url
    ):
        sb = sandbox_factory(**FAST)
        nowhere = "postgres://probe:hush@127.0.0.1:9/nowhere"
        platform(sb).update_config_vars(
            APP, {scratch.SCRATCH_MARK: "true", "DATABASE_URL": nowhere}
        )
        before = addon_names(sb)
        with pytest.raises(scratch.SetupFailed, match="could not connect to the scratch database"):
            scratch.run(settings_for(sb), APP, authorize=open_link, wait_seconds=WAIT)
        assert addon_names(sb) == before

    def test_a_schema_there_before_configure_is_not_dropped(
        self, sandbox_factory, db_url, monkeypatch
    ):
        sb = sandbox_factory(**FAST)
        platform(sb).update_config_vars(APP, {scratch.SCRATCH_MARK: "true"})
        monkeypatch.setattr(scratch_setup, "new_suffix", lambda: "5a5a5a")
        mine = "swapbot_probe_5a5a5a"
        someones_table(db_url, mine)
        only(monkeypatch, "configure-creates-schema", "remove-addon-keeps-schema")
        probed = probe_in(sb, db_url)
        found = probed.finding("configure-creates-schema")
        assert found.verdict == "unknown" and "there before configure" in found.observed
        assert probed.addons_after == probed.addons_before
        assert someones_rows(db_url, mine) == [("kept",)]


def someones_table(db_url: str, schema: str) -> None:
    """A schema with a table and a row that the probe did not make."""
    with psycopg.connect(db_url, autocommit=True) as db:
        db.execute(f'CREATE SCHEMA "{schema}"')
        db.execute(f'CREATE TABLE "{schema}".someones (note text)')
        db.execute(f"INSERT INTO \"{schema}\".someones VALUES ('kept')")


def someones_rows(db_url: str, schema: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url, autocommit=True) as db:
        return db.execute(f'SELECT note FROM "{schema}".someones').fetchall()


class TestGivenAddon:
    def test_an_addon_given_is_used_as_is_and_kept(self, sandbox_factory, db_url, monkeypatch):
        sb = sandbox_factory(**FAST)
        client = platform(sb)
        client.update_config_vars(APP, {scratch.SCRATCH_MARK: "true"})
        name = given_addon(sb)
        keys = only(
            monkeypatch,
            "configure-creates-schema",
            "import-status-code",
            "import-leaves-other-mappings",
            "pause-resume-status-code",
            "delete-mapping-table",
            "delete-mapping-repeat",
            "remove-addon-keeps-schema",
        )
        probed = probe_in(sb, db_url, addon=name)
        assert list(probed.results.findings) == keys
        for key in ("configure-creates-schema", "remove-addon-keeps-schema"):
            found = probed.finding(key)
            assert found.verdict == "unknown"
            assert found.observed == "not run: the add-on was not made by the probe"
        assert probed.finding("import-status-code").verdict == "confirmed"
        assert probed.finding("delete-mapping-repeat").variant == "404"
        assert name in probed.addons_after
        # Running again, without the mappings the probe added; its schema kept.
        state, mappings = connection_of(db_url, name)
        assert state != "PAUSED"
        assert mappings == 0
        with psycopg.connect(db_url, autocommit=True) as db:
            assert db.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'given'").fetchone()

    def test_the_mappings_of_an_addon_given_are_never_changed(
        self, sandbox_factory, db_url, monkeypatch
    ):
        sb = sandbox_factory(**FAST)
        platform(sb).update_config_vars(APP, {scratch.SCRATCH_MARK: "true"})
        name = given_addon(sb, mapped="Account")
        before = mappings_of(sb, name)
        keys = only(
            monkeypatch,
            "import-status-code",
            "import-write-algorithm",
            "put-mapping-body",
            "abort-has-no-api",
            "delete-mapping-trigger-log",
            "delete-mapping-table",
            "delete-mapping-repeat",
            "import-connection-block",
        )
        probed = probe_in(sb, db_url, addon=name)
        for key in keys:
            found = probed.finding(key)
            assert found.verdict == "unknown" and found.observed.startswith("not run:"), key
        assert "hc-given has mappings the probe did not make (Account)" in (
            probed.finding("put-mapping-body").observed
        )
        assert mappings_of(sb, name) == before
        with psycopg.connect(db_url, autocommit=True) as db:
            assert db.execute("SELECT count(*) FROM given.account").fetchone() != (0,)
        assert "given_moved" not in all_schemas(db_url)

    def test_a_check_makes_its_own_mapping_and_a_schema_there_before_is_kept(
        self, sandbox_factory, db_url, monkeypatch
    ):
        sb = sandbox_factory(**FAST)
        platform(sb).update_config_vars(APP, {scratch.SCRATCH_MARK: "true"})
        name = given_addon(sb)
        someones_table(db_url, "given_moved")
        only(
            monkeypatch, "delete-mapping-table", "delete-mapping-repeat", "import-connection-block"
        )
        probed = probe_in(sb, db_url, addon=name)
        # No mapping to delete: the probe imported one of its own first.
        table = probed.finding("delete-mapping-table")
        assert (table.verdict, table.variant) == ("confirmed", "true"), table.observed
        assert probed.finding("delete-mapping-repeat").variant == "404"
        block = probed.finding("import-connection-block")
        assert block.verdict == "unknown"
        assert (
            block.observed
            == "not run: schema given_moved is there already, and it is not the probe's"
        )
        assert someones_rows(db_url, "given_moved") == [("kept",)]


class TestImportChecks:
    def test_a_column_missing_after_the_load_plays_false(
        self, sandbox_factory, db_url, monkeypatch
    ):
        sb = sandbox_factory(**FAST)
        platform(sb).update_config_vars(APP, {scratch.SCRATCH_MARK: "true"})
        only(monkeypatch, "import-status-code", "import-accepts-added-fields")
        monkeypatch.setattr(scratch_imports, "has_column", lambda *args: False)
        probed = probe_in(sb, db_url)
        found = probed.finding("import-accepts-added-fields")
        assert (found.verdict, found.variant) == ("contradicted", "false")
        assert "has no column" in found.observed


def given_addon(sb: Sandbox, mapped: str | None = None) -> str:
    """A demo add-on of the test's own, configured on schema `given` and authorized; with a
    read-write mapping of `mapped`, loaded."""
    client, hc = platform(sb), ConnectClient(TOKEN, sb.central_url)
    name = "hc-given"
    client.create_addon(APP, plan="herokuconnect:demo", name=name)
    wait_until(lambda: client.get_addon(APP, name).state == "provisioned", what="provisioned")
    ref = hc.find_connection(APP, name)
    hc.configure(ref, db_key="DATABASE_URL", schema_name="given")
    open_link(hc.authorize_url(ref, next_url="https://swapbot.example/hc/authorized"))
    wait_until(lambda: hc.get_connection(ref).state == "IDLE", what="IDLE")
    if mapped:
        fields = {f: {} for f in ("Id", "IsDeleted", "SystemModstamp", "Name")}
        config = {"access": "read_write", "fields": fields}
        hc.create_mapping(ref, mapped, config)
        wait_until(lambda: loaded(hc.get_connection(ref)), what="loaded")
    return name


def loaded(c: Any) -> bool:
    return c.state == "IDLE" and all(m.state in SYNCED_STATES for m in c.mappings)


def mappings_of(sb: Sandbox, addon: str) -> list[tuple[str, str | None, int | None, list[str]]]:
    """Each mapping's id, object, revision and fields."""
    hc = ConnectClient(TOKEN, sb.central_url)
    c = hc.get_connection(hc.find_connection(APP, addon))
    return [
        (
            m.id,
            m.object_name,
            m.config.revision if m.config else None,
            sorted(m.config.fields) if m.config else [],
        )
        for m in c.mappings
    ]


def all_schemas(db_url: str) -> set[str]:
    with psycopg.connect(db_url, autocommit=True) as db:
        return {r[0] for r in db.execute("SELECT nspname FROM pg_namespace").fetchall()}


def connection_of(db_url: str, addon: str) -> tuple[str, int]:
    with psycopg.connect(db_url, autocommit=True) as db:
        row = db.execute(
            "SELECT c.state, (SELECT count(*) FROM _hcsandbox.mapping m WHERE m.connection_id = c.id) "
            "FROM _hcsandbox.connection c JOIN _hcsandbox.addon a ON a.id = c.addon_id "
            "WHERE a.name = %s",
            (addon,),
        ).fetchone()
    assert row is not None
    return row[0], row[1]


# --- the command line -------------------------------------------------------------------------------


def env(monkeypatch: pytest.MonkeyPatch, sb: Sandbox, out: Path) -> None:
    monkeypatch.setenv("HEROKU_API_TOKEN", TOKEN)
    monkeypatch.setenv("HEROKU_CONNECT_CENTRAL_URL", sb.central_url)
    monkeypatch.setenv("HEROKU_API_URL", sb.platform_url)
    monkeypatch.setenv("SWAPBOT_PROBE_FILE", str(out))


@contextmanager
def person_at_the_browser(sb: Sandbox, db_url: str) -> Iterator[list[int]]:
    """Someone who opens the probe's authorize link as soon as the sandbox has one (the command
    line prints it; the test watches for it instead of reading the terminal)."""
    stop, opened = threading.Event(), []

    def watch() -> None:
        with psycopg.connect(db_url, autocommit=True) as db:
            while not stop.is_set() and not opened:
                row = db.execute(LINK_STATES).fetchone()
                if row is not None:
                    answer = requests.get(
                        f"{sb.base_url}/_sandbox/oauth/authorize",
                        params={"state": row[0], "env": "production", "username": PERSON},
                        timeout=5,
                    )
                    if answer.ok:
                        opened.append(answer.status_code)
                stop.wait(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield opened
    finally:
        stop.set()
        thread.join(timeout=5)


class TestCommandLine:
    def test_probe_scratch_app_writes_the_results_file(
        self, sandbox_factory, db_url, monkeypatch, tmp_path, capsys
    ):
        sb = sandbox_factory(**FAST)
        out = tmp_path / "probe.json"
        env(monkeypatch, sb, out)
        # What a read-only run wrote earlier: kept, the scratch run's findings beside it.
        earlier = ProbeResults(app=APP, addon="hc1")
        earlier.findings["counts-field-name"] = Finding(
            key="counts-field-name", kind="read", verdict="confirmed", observed="counts.db"
        )
        earlier.save(out)
        monkeypatch.setattr(
            scratch, "run", functools.partial(scratch.run, wait_seconds=WAIT, poll_seconds=POLL)
        )
        keys = only(
            monkeypatch,
            "configure-creates-schema",
            "import-status-code",
            "remove-addon-keeps-schema",
        )
        from swapbot.cli import main

        before = addon_names(sb)
        with person_at_the_browser(sb, db_url) as opened:
            code = main(["probe", "--scratch-app", APP, "--i-know-this-is-scratch"])
        assert code == 0
        assert opened == [200]
        printed, errors = capsys.readouterr()
        assert "Open this link to authorize the scratch connection in Salesforce: http" in printed
        assert db_url not in printed + errors and TOKEN not in printed + errors
        assert "import-status-code" in printed
        saved = ProbeResults.load(out)
        assert (saved.app, saved.addon, saved.scratch_app) == (APP, "hc1", APP)
        assert saved.findings["counts-field-name"].observed == "counts.db"
        assert list(saved.findings) == ["counts-field-name", *keys]
        assert saved.variant("import-status-code") == "202"
        assert addon_names(sb) == before
        assert probe_schemas(db_url) == set()
