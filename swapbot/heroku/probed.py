"""What `swapbot probe` found: one finding per assumption of `assumptions.py`, with the requests
and answers that show it.

The file a probe writes is kept with the deploy (`SWAPBOT_PROBE_FILE`); the engine reads it to
choose the variant it plays where Heroku's behaviour is unconfirmed (`Plays`), and `plan show`
prints it. The probe itself (swapbot.probe) writes these; here is only what they mean.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from swapbot import __version__
from swapbot.heroku.connect import PUT_BODIES, PutBody

# Where `/hcswap probe` keeps its findings (a Redis record of no one swap).
RECORD = "probe"

Verdict = Literal["confirmed", "contradicted", "unknown"]
Kind = Literal["read", "change"]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Exchange(BaseModel):
    """One request and its answer, cut short: evidence, not a transcript."""

    method: str
    url: str
    request: str | None = None
    status: int | None = None
    response: str | None = None
    at: dt.datetime = Field(default_factory=now)

    def line(self) -> str:
        return f"{self.method} {self.url} -> {self.status}"


class Finding(BaseModel):
    key: str
    kind: Kind
    verdict: Verdict
    # What was seen, in words a person reads ("counts.db", "answered 404").
    observed: str
    # The sandbox flag value that plays what was seen, when the assumption has one; the engine
    # reads it (e.g. "create-plus-revision", "true").
    variant: str | None = None
    evidence: list[Exchange] = Field(default_factory=list)
    at: dt.datetime = Field(default_factory=now)
    region: str | None = None


class ProbeResults(BaseModel):
    """Every finding of one or more probe runs, newest per key."""

    version: int = 1
    swapbot: str = __version__
    app: str | None = None
    addon: str | None = None
    scratch_app: str | None = None
    region: str | None = None
    findings: dict[str, Finding] = Field(default_factory=dict)
    # Why the findings could not be read (a probe file that does not parse): the engine then
    # plays the documented guesses, and preflight stops until the file is mended.
    problem: str | None = None

    def finding(self, key: str) -> Finding | None:
        return self.findings.get(key)

    def variant(self, key: str) -> str | None:
        """The variant a probe saw for `key`, or None when it was not seen."""
        found = self.findings.get(key)
        return found.variant if found is not None and found.verdict != "unknown" else None

    def merged(self, other: ProbeResults) -> ProbeResults:
        """These results and `other`'s, the newer finding kept for each key (a read-only run on
        production, then a scratch run: both are kept)."""
        findings = dict(self.findings)
        for key, found in other.findings.items():
            if key not in findings or found.at >= findings[key].at:
                findings[key] = found
        update: dict[str, object] = {
            name: getattr(other, name) or getattr(self, name)
            for name in ("app", "addon", "scratch_app", "region", "problem")
        }
        return self.model_copy(update={**update, "swapbot": other.swapbot, "findings": findings})

    def save(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> ProbeResults:
        return cls.model_validate_json(path.read_text())


def by_assumption(results: ProbeResults | None) -> list[tuple[str, Finding | None]]:
    """Each assumption of `assumptions.py` in its order with what a probe found (None: not
    probed), then any other finding (Heroku Connect's diagnose)."""
    from swapbot.heroku.assumptions import ASSUMPTIONS

    found = dict(results.findings) if results else {}
    out: list[tuple[str, Finding | None]] = [(a.key, found.pop(a.key, None)) for a in ASSUMPTIONS]
    return out + sorted(found.items())


def load_if_present(path: Path | None) -> ProbeResults | None:
    """The results at `path`, None when there is no file. A file that cannot be read gives
    results that say why (`problem`): the engine must not start a swap playing the documented
    guesses while the operator believes it plays what they probed, yet `status` and `rollback`
    must still work."""
    if path is None or not path.exists():
        return None
    try:
        return ProbeResults.load(path)
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return ProbeResults(problem=f"{path} cannot be read: {first}")


@dataclass(frozen=True)
class Plays:
    """What the engine does where Heroku's behaviour is unconfirmed: the documented guess, or
    what a probe saw on a real connection. Each field names the assumption it follows."""

    # put-mapping-body: the body PUT /mappings/{id} takes (add-columns).
    put_body: PutBody = "create-plus-revision"
    # import-accepts-added-fields: the new fields go into the import file (the shortcut); when
    # a probe saw import drop them, the import carries hc1's fields only and abort, add-columns
    # and reload run in the help article's order.
    import_added_fields: bool = True
    # export-applied-at: when a probe saw import refuse `applied_at`, it is dropped from the file.
    import_keeps_applied_at: bool = True
    # poll-soon-after-resume: None when not probed (verify waits up to a polling interval).
    resume_polls_at_once: bool | None = None

    @classmethod
    def from_results(cls, results: ProbeResults | None) -> Plays:
        if results is None:
            return cls()
        put = next((b for b in PUT_BODIES if b == results.variant("put-mapping-body")), None)
        added = results.variant("import-accepts-added-fields")
        applied = results.variant("export-applied-at")
        polls = results.variant("poll-soon-after-resume")
        return cls(
            put_body=put or cls.put_body,
            import_added_fields=added != "false",
            import_keeps_applied_at=applied != "true",
            resume_polls_at_once=None if polls is None else polls == "true",
        )
