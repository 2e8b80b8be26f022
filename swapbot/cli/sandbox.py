"""`swapbot sandbox` (serve the local Heroku stand-in) and `swapbot demo` (rehearse against it)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import typing

from swapbot.sandbox import scenarios
from swapbot.sandbox.options import Assumptions, SandboxOptions
from swapbot.swap import steps as runbook

log = logging.getLogger(__name__)

LOCAL_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _assumption_values(name: str) -> dict[str, object]:
    """The values a flag takes, by how they are written: true/false, or a Literal's values."""
    annotation = Assumptions.model_fields[name].annotation
    if annotation is bool:
        return {"true": True, "false": False}
    return {str(v).lower(): v for v in typing.get_args(annotation)}


def _assumption(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    expected = "expected NAME=true|false, or NAME=VALUE for a flag with other values"
    if not sep or key not in Assumptions.model_fields:
        flags = ", ".join(
            f"{k}={'|'.join(_assumption_values(k))}" for k in Assumptions.model_fields
        )
        raise argparse.ArgumentTypeError(f"{expected}; one of: {flags}")
    values = _assumption_values(key)
    if value.lower() not in values:
        raise argparse.ArgumentTypeError(f"{expected}: {key}={'|'.join(values)}")
    return key, values[value.lower()]


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _not_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _options(args: argparse.Namespace, stored: dict | None = None) -> SandboxOptions:
    """Options from the command line; assumptions not named there keep their stored value."""
    return SandboxOptions(
        speed=args.speed,
        faults=args.faults,
        seed=args.seed,
        load_rows_per_second=args.load_rate,
        org_changes_per_second=args.org_change_rate,
        org_api_daily_limit=args.api_daily_limit,
        writer_latency_seconds=args.writer_latency,
        assumptions=Assumptions(**{**(stored or {}), **dict(args.assume or [])}),
    )


def add_sandbox_arguments(p: argparse.ArgumentParser) -> None:
    add = p.add_argument
    add("--speed", type=_positive, default=1.0, help="simulated seconds per real second (1)")
    add(
        "--faults", type=_fraction, default=0.0, help="share of API calls that fail: 5xx, 429, slow"
    )
    add("--seed", type=int, default=None, help="random seed, for repeatable runs")
    add("--load-rate", type=_positive, default=500.0, help="rows a second a load copies (500)")
    add("--org-change-rate", type=_not_negative, default=0.5, help="org changes a second (0.5)")
    add("--api-daily-limit", type=int, default=1_000_000, help="the org's daily API request limit")
    add("--writer-latency", type=_not_negative, default=2.0, help="seconds before HC sends a write")
    add(
        "--assume",
        type=_assumption,
        action="append",
        metavar="NAME=VALUE",
        help="pick a variant of an unconfirmed behaviour (repeatable): "
        + ", ".join(Assumptions.model_fields),
    )
    add("--write-load", type=_not_negative, default=0.0, metavar="PER_SECOND", help="app writes/s")


def _serve(args: argparse.Namespace) -> int:
    from swapbot.sandbox.server import Sandbox
    from swapbot.sandbox.writeload import WriteLoad

    try:
        scenario = scenarios.get(args.scenario)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    stored = None
    if args.keep:
        stored = scenarios.stored_assumptions(args.database_url)
        if stored is None:
            print(
                "--keep: this database holds no sandbox yet; run once without --keep",
                file=sys.stderr,
            )
            return 2
    else:
        print(f"loading scenario {scenario.name} ...", flush=True)
        scenarios.load(args.database_url, scenario)
    sandbox = Sandbox(args.database_url, _options(args, stored), port=args.port).start()
    load = WriteLoad(args.database_url, args.write_load).start() if args.write_load > 0 else None
    print(f"sandbox listening on {sandbox.base_url}")
    print(f"  HEROKU_CONNECT_CENTRAL_URL={sandbox.central_url}")
    print(f"  HEROKU_API_URL={sandbox.platform_url}")
    print(f"  app {scenario.app}; any non-empty bearer token is accepted; Ctrl-C stops", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if load:
            load.stop()
        sandbox.stop()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from swapbot.testing.demo import DemoOptions, run_demo

    return run_demo(
        DemoOptions(
            sandbox=_options(args),
            admin_url=args.admin_url,
            database=args.database,
            write_load=args.write_load,
            rollback_at=args.rollback_at,
            assume=list(args.assume or []),
        )
    )


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sandbox", help="serve the local Heroku Connect and Platform API stand-in")
    p.add_argument("--port", type=int, default=5055)
    p.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        required=not os.environ.get("DATABASE_URL"),
        help="the PostgreSQL database the sandbox owns (default: $DATABASE_URL)",
    )
    p.add_argument("--scenario", default="demo", help=", ".join(sorted(scenarios.SCENARIOS)))
    p.add_argument("--keep", action="store_true", help="carry on with the database's sandbox state")
    add_sandbox_arguments(p)
    p.set_defaults(func=_serve)

    d = sub.add_parser("demo", help="rehearse against the local sandbox, in the terminal")
    d.add_argument("--admin-url", default=LOCAL_ADMIN_URL, help="a URL allowed to create databases")
    d.add_argument("--database", default="swapbot_demo", help="the demo database (re-created)")
    d.add_argument(
        "--rollback-at",
        choices=[s.name for s in runbook.CUTOVER if not s.point_of_no_return][1:],
        help="rehearse a rollback just before this cutover step",
    )
    add_sandbox_arguments(d)
    d.set_defaults(func=_demo, speed=50.0, write_load=5.0, org_change_rate=2.0)
