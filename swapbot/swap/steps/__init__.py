"""The runbook, one declaration per step (docs/runbook.md tells it as a person reads it).

A step knows its name, phase, whether it needs a second person, whether it is inside the outage
or past the point of no return, how to tell from the live system that it is done (`check`), how
to act (`act`), and how to undo (`undo`). The engine runs every step the same way: check, act
if needed, wait until the check passes. Steps never lock, retry, audit or format messages.

`check` returns a `Check`: done or not, with what was seen. `act` makes changes only through
`run.live.change(...)` (so dry runs list them) and records what rollback needs with
`run.remember(...)`. A step that only a person can do has `person` set: its `act` asks, and the
engine waits for the live system to show it was done.
"""

from __future__ import annotations

from swapbot.swap.steps.base import Check, Estimate, Phase, Step, resume
from swapbot.swap.steps.cutover import (
    delete_old_act,
    delete_old_check,
    delete_old_undo,
    drain_check,
    external_objects_act,
    external_objects_check,
    pause_act,
    pause_check,
    restore_act,
    restore_check,
    resume_new_act,
    running,
    stop_writes_act,
    stop_writes_check,
    switch_act,
    switch_check,
    switch_undo,
    undo_pause,
    verify_check,
)
from swapbot.swap.steps.objects import objects_act, objects_check, objects_undo
from swapbot.swap.steps.prep import (
    abort_act,
    abort_check,
    add_columns_act,
    add_columns_check,
    authorize_act,
    authorize_check,
    configure_act,
    configure_check,
    create_addon_act,
    create_addon_check,
    create_addon_landed,
    export_act,
    export_check,
    import_act,
    import_check,
    import_landed,
    measure_act,
    measure_check,
    measure_undo,
    parity_act,
    parity_check,
    preflight_act,
    preflight_check,
    reload_act,
    reload_check,
    remove_addon_undo,
    settings_act,
    settings_check,
    wait_sync_check,
)

__all__ = ["APPROVED", "BY_NAME", "CONFIRMABLE", "CUTOVER", "OUTAGE_END", "OUTAGE_START",
           "PREP", "STEPS", "Check", "Estimate", "Phase", "Step", "after", "get"]  # fmt: skip

# -- the runbook -----------------------------------------------------------------------------
PREP: tuple[Step, ...] = (
    Step(
        "preflight",
        "prep",
        "check the database requirements",
        preflight_check,
        preflight_act,
        proof="record",
        reads_only=True,
    ),
    Step(
        "create-addon",
        "prep",
        "create hc2 on the app",
        create_addon_check,
        create_addon_act,
        undo=remove_addon_undo,
        undo_removes_hc2=True,
        unsafe=True,
        waits_on="heroku",
        landed=create_addon_landed,
    ),
    Step(
        "configure",
        "prep",
        "point hc2 at the database and the new schema",
        configure_check,
        configure_act,
    ),
    Step(
        "authorize",
        "prep",
        "a person authorizes hc2 with Salesforce",
        authorize_check,
        authorize_act,
        person="authorize in the browser",
        waits_on="person",
        timeout=3600,
    ),
    Step(
        "export",
        "prep",
        "export and keep hc1's configuration",
        export_check,
        export_act,
        proof="record",
        reads_only=True,
    ),
    Step(
        "import",
        "prep",
        "import the moved mappings, with the new fields, into hc2",
        import_check,
        import_act,
        unsafe=True,
        waits_on="heroku",
        landed=import_landed,
    ),
    Step(
        "abort",
        "prep",
        "stop loads that started without the new fields",
        abort_check,
        abort_act,
        person="press Abort in the dashboard",
        waits_on="person",
        timeout=3600,
    ),
    Step(
        "add-columns",
        "prep",
        "add the new fields to hc2's mappings",
        add_columns_check,
        add_columns_act,
        unsafe=True,
    ),
    Step(
        "reload",
        "prep",
        "reload the aborted mappings",
        reload_check,
        reload_act,
        unsafe=True,
        waits_on="heroku",
    ),
    Step(
        "settings",
        "prep",
        "match Merged Writes and notification settings",
        settings_check,
        settings_act,
        person="set write algorithm and notifications",
        waits_on="person",
        timeout=3600,
        proof="record",
        confirms="settings",
    ),
    Step(
        "wait-sync",
        "prep",
        "wait for hc2's initial loads",
        wait_sync_check,
        waits_on="heroku",
        timeout=86_400,
        reads_only=True,
    ),
    Step(
        "parity",
        "prep",
        "compare the old and new copies of the moved tables (reads only)",
        parity_check,
        parity_act,
        timeout=600,
        proof="record",
        reads_only=True,
    ),
    Step(
        "measure",
        "prep",
        "pause and resume hc2 once, timing it, for the outage prediction",
        measure_check,
        measure_act,
        undo=measure_undo,
        waits_on="heroku",
        repeat_act=True,
        timeout=3600,  # the first poll after the resume may wait one polling interval
        proof="record",
    ),
    Step(
        "prepare-objects",
        "prep",
        "recreate the indexes, grants, views and functions in the new schema",
        objects_check("prep"),
        objects_act("prep"),
        undo=objects_undo,
        person="handle objects the bot cannot carry",
        timeout=600,
        proof="record",
        confirms="objects",
    ),
)

CUTOVER: tuple[Step, ...] = (
    Step(
        "stop-writes",
        "cutover",
        "maintenance on, scale the app's writers to 0",
        stop_writes_check,
        stop_writes_act,
        undo=restore_act,
        undo_needs=("formation", "maintenance_before"),
        in_outage=True,
        waits_on="heroku",
        timeout=300,
        estimate=Estimate("dynos-stop"),
        starts_outage=True,
    ),
    Step(
        "drain",
        "cutover",
        "wait until hc1 has written every pending change",
        drain_check,
        in_outage=True,
        waits_on="heroku",
        timeout=1800,
        reads_only=True,
        estimate=Estimate("drain"),
    ),
    Step(
        "pause",
        "cutover",
        "pause hc1 and hc2",
        pause_check,
        pause_act,
        undo=undo_pause,
        approval=True,
        in_outage=True,
        waits_on="heroku",
        repeat_act=True,
        timeout=600,
        estimate=Estimate("heroku", measured="paused_after"),
    ),
    Step(
        "cutover-objects",
        "cutover",
        "create the triggers and foreign keys, re-point dependents outside the old schema",
        objects_check("cutover"),
        objects_act("cutover"),
        undo=objects_undo,
        in_outage=True,
        proof="record",
        confirms="objects",
        estimate=Estimate("bot"),
    ),
    Step(
        "switch",
        "cutover",
        "switch the app's search_path to the new schema",
        switch_check,
        switch_act,
        undo=switch_undo,
        undo_needs=("search_path",),
        in_outage=True,
        estimate=Estimate("bot"),
    ),
    Step(
        "resume-new",
        "cutover",
        "resume hc2",
        running(lambda r: r.plan.new_addon),
        resume_new_act,
        in_outage=True,
        waits_on="heroku",
        estimate=Estimate("heroku", measured="resumed_after"),
    ),
    Step(
        "delete-old",
        "cutover",
        "delete the moved mappings from hc1: the point of no return",
        delete_old_check,
        delete_old_act,
        undo=delete_old_undo,
        approval=True,
        in_outage=True,
        point_of_no_return=True,
        estimate=Estimate("bot"),
    ),
    Step(
        "resume-old",
        "cutover",
        "resume hc1",
        running(lambda r: r.plan.old_addon),
        resume(lambda r: r.plan.old_addon),
        in_outage=True,
        waits_on="heroku",
        estimate=Estimate("heroku", measured="resumed_after"),
    ),
    Step(
        "verify",
        "cutover",
        "check data flows into the new schema",
        verify_check,
        in_outage=True,
        waits_on="heroku",
        timeout=900,
        reads_only=True,
        estimate=Estimate("first-poll"),
    ),
    Step(
        "restore",
        "cutover",
        "restore the formation, maintenance off",
        restore_check,
        restore_act,
        in_outage=True,
        waits_on="heroku",
        timeout=300,
        estimate=Estimate("dynos-boot"),
        ends_outage=True,
    ),
    Step(
        "external-objects",
        "cutover",
        "re-point External Objects, if any",
        external_objects_check,
        external_objects_act,
        person="re-point External Objects",
        waits_on="person",
        timeout=3600,
        confirms="external-objects",
    ),
)

STEPS: tuple[Step, ...] = PREP + CUTOVER
BY_NAME: dict[str, Step] = {s.name: s for s in STEPS}
# Derived from the table, so that a new step needs no edit anywhere else.
OUTAGE_START = next(s.name for s in STEPS if s.starts_outage)
OUTAGE_END = next(s.name for s in STEPS if s.ends_outage)  # the app runs again
APPROVED: tuple[str, ...] = tuple(s.name for s in STEPS if s.approval)
CONFIRMABLE: tuple[str, ...] = tuple(dict.fromkeys(s.confirms for s in STEPS if s.confirms))


def after(name: str) -> tuple[Step, ...]:
    """The steps the runbook runs after the step `name`, in order (none for an unknown name)."""
    names = [s.name for s in STEPS]
    return STEPS[names.index(name) + 1 :] if name in names else ()


def get(name: str) -> Step:
    if name not in BY_NAME:
        raise KeyError(f"unknown step {name!r}; the steps are: {', '.join(BY_NAME)}")
    return BY_NAME[name]
