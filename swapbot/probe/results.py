"""The probe's findings; the model lives in swapbot.heroku.probed so the engine can read it."""

from swapbot.heroku.probed import (
    Exchange,
    Finding,
    Kind,
    ProbeResults,
    Verdict,
    load_if_present,
    now,
)

__all__ = ["Exchange", "Finding", "Kind", "ProbeResults", "Verdict", "load_if_present", "now"]
