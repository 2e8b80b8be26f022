"""Work the web process hands to `swapbot worker` over Redis (rq), so an ack never waits on it.

A job names what to run, never how: the worker builds its own engine from the settings and runs
the same code the terminal front end calls. The engine's lease still decides who acts, so a
job delivered twice, or run by two workers, cannot run a step twice; a `key` (Slack's trigger
id, or a reaction's event id) makes the same request queued twice one job.

Two queues: `steps` for work that may take hours (a step, `next`, `rollback`) and
`interactive` for everything a person waits on (status, plans, approvals, reactions), so that
a long step never makes `status` wait. rq's own keys always start with `rq:`; the queues' names
carry SWAPBOT_REDIS_PREFIX, so two swapbots sharing one Redis never take each other's jobs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.job import Job

from swapbot import config

log = logging.getLogger(__name__)

JOB_TIMEOUT = 6 * 3600  # wait-sync may watch a load for hours
RESULT_TTL = 86_400  # a finished job's id is remembered this long: retries within it are no-ops


STEPS, INTERACTIVE = "steps", "interactive"


def queue_name(settings: config.Settings, kind: str = STEPS) -> str:
    return f"{settings.swapbot_redis_prefix}{kind}"


def queue(settings: config.Settings, connection: Any = None, kind: str = STEPS) -> Queue:
    return Queue(queue_name(settings, kind), connection=connection or config.redis_client(settings))


def job_id(settings: config.Settings, what: str, key: str) -> str:
    digest = hashlib.sha256(f"{settings.swapbot_redis_prefix}{what}:{key}".encode())
    return "swapbot-" + digest.hexdigest()[:24]


def submit(
    q: Queue,
    settings: config.Settings,
    func: Callable[..., Any] | str,
    *args: Any,
    key: str | None = None,
    description: str = "",
    **kwargs: Any,
) -> Job:
    """Queue `func(*args, **kwargs)` for a worker; the same `key` queued again is the same job.

    `func` may be a dotted path, so that the web process need not import what the worker runs."""
    name = func if isinstance(func, str) else f"{func.__module__}.{func.__qualname__}"
    jid = job_id(settings, name, key) if key else None
    try:
        return q.enqueue_call(
            func,
            args=args,
            kwargs=kwargs,
            job_id=jid,
            unique=bool(jid),
            result_ttl=RESULT_TTL,
            failure_ttl=RESULT_TTL,
            timeout=JOB_TIMEOUT,
            description=description or name,
        )
    except DuplicateJobError:  # the same request again (a Slack retry): the first job stands
        return Job.fetch(jid, connection=q.connection)


# -- the intake: the web process's one-command handoff ------------------------------------------
# Building an rq job costs about 0.75 ms of CPU (pickling, a Lua script, several round trips);
# an acknowledgement must cost as little as a bare Bolt app's. So the web process pushes one
# small JSON document on a Redis list (one LPUSH; for a Slack event, one script that also marks
# the event seen) and the worker's intake turns it into the rq job. The list is durable: a
# request waits there until a worker takes it, and one a worker was taking when it died is put
# back when a worker starts.
def intake_keys(settings: config.Settings) -> tuple[str, str]:
    prefix = settings.swapbot_redis_prefix
    return f"{prefix}intake", f"{prefix}intake:taking"


# Hand a request off and mark its Slack event seen, both or neither: KEYS[1] the event's marker,
# KEYS[2] the intake list; ARGV[1] the marker's TTL in seconds, ARGV[2] the request. Returns 1 if
# pushed, 0 if the event was already handed off. The push comes before the marker: Redis does not
# undo a script's earlier writes when a later command fails, and a push that fails (a wrong type,
# out of memory) must leave the event unmarked, so that Slack's retry is taken. (A marker that
# failed after the push would only let a retry push again: the intake makes one job per key.)
PUSH_ONCE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return 1
"""
_PUSH_ONCE_SHA = hashlib.sha1(PUSH_ONCE.encode()).hexdigest()


class Handoff:
    """The web process's side of the intake: one LPUSH per command, or one EVALSHA (the push
    and the event's dedupe marker together) per Slack event, on a connection of the request
    thread's own.

    redis-py's `lpush` checks a connection out of the pool (a lock and a readiness poll),
    wraps the call in retries and checks deprecated arguments. In a gunicorn worker under a
    wave of requests that came to about 0.1 ms of the 0.33 ms of CPU swapbot's acks cost
    more than a bare Bolt app's (docs/figures.md). A connection kept per thread skips it. A
    connection that fails is dropped and the push tried once more on a fresh one (Redis
    restarted, a dyno's idle socket closed); a push repeated after a lost reply is harmless,
    since the intake makes one job per key.
    """

    def __init__(self, client: Any):
        self.pool = client.connection_pool
        self._local = threading.local()

    def lpush(self, key: str, value: str) -> int:
        try:
            return self._lpush(key, value)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            return self._lpush(key, value)  # once more, on a fresh connection

    def _lpush(self, key: str, value: str) -> int:
        conn = self._connection()
        try:
            # hiredis packs the command in one call; redis-py's encoder would take each part
            # through Python first.
            packed = hiredis.pack_command(("LPUSH", key, value))
            conn.send_packed_command([packed], check_health=False)
            return int(conn.read_response())
        except (RedisConnectionError, RedisTimeoutError, OSError):
            self._drop(conn)
            raise

    def lpush_once(self, marker: str, ttl_s: int, key: str, value: str) -> bool:
        """LPUSH `value` on `key` and set `marker` for `ttl_s` seconds, both or neither, unless
        `marker` is already set: True if pushed, False for a request already handed off. One
        EVALSHA, so an event is marked seen only once its request is durably queued."""
        try:
            return self._lpush_once(marker, ttl_s, key, value)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            # once more on a fresh connection; if the lost reply was a push, this finds the marker
            return self._lpush_once(marker, ttl_s, key, value)

    def _lpush_once(self, marker: str, ttl_s: int, key: str, value: str) -> bool:
        conn = self._connection()
        args = ("2", marker, key, str(ttl_s), value)
        try:
            conn.send_packed_command(
                [hiredis.pack_command(("EVALSHA", _PUSH_ONCE_SHA, *args))], check_health=False
            )
            try:
                answer = conn.read_response()
            except NoScriptError:  # a restarted or failed-over Redis: EVAL loads it again
                conn.send_packed_command(
                    [hiredis.pack_command(("EVAL", PUSH_ONCE, *args))], check_health=False
                )
                answer = conn.read_response()
            return bool(int(answer))
        except (RedisConnectionError, RedisTimeoutError, OSError):
            self._drop(conn)
            raise

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.pool.make_connection()
        return conn

    def _drop(self, conn: Any) -> None:
        conn.disconnect()
        self._local.conn = None


# Built once: json.dumps with any option builds a new encoder per call, a cost on every ack.
_compact = json.JSONEncoder(separators=(",", ":")).encode


def push(
    connection: Any,
    settings: config.Settings,
    func: str,
    *args: Any,
    kind: str = INTERACTIVE,
    key: str | None = None,
    description: str = "",
) -> None:
    """Hand a request to the workers (one LPUSH). `key` makes the same request one job.
    `connection` is a redis-py client or, in the web process, a `Handoff`."""
    request = {"func": func, "args": list(args), "kind": kind, "key": key, "about": description}
    connection.lpush(intake_keys(settings)[0], _compact(request))


def push_once(
    connection: Any,
    settings: config.Settings,
    marker: str,
    ttl_s: int,
    func: str,
    *args: Any,
    kind: str = INTERACTIVE,
    key: str | None = None,
    description: str = "",
) -> bool:
    """`push`, unless `marker` (a Slack event's dedupe key) is set; the push and the marker are
    one Redis operation. False: the event was handed off already (Slack's retry, nothing done).
    `connection` is a `Handoff` (one EVALSHA) or a redis-py client."""
    request = {"func": func, "args": list(args), "kind": kind, "key": key, "about": description}
    intake = intake_keys(settings)[0]
    if isinstance(connection, Handoff):
        return connection.lpush_once(marker, ttl_s, intake, _compact(request))
    script = connection.register_script(PUSH_ONCE)
    return bool(int(script(keys=[marker, intake], args=[ttl_s, _compact(request)])))


class Intake:
    """Turns pushed requests into rq jobs, one at a time, in order; several may run."""

    def __init__(self, settings: config.Settings, connection: Any):
        self.settings, self.connection = settings, connection
        self.queues = {k: queue(settings, connection, k) for k in (STEPS, INTERACTIVE)}
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def recover(self) -> int:
        """Put back what a worker was taking when it died (a second submit of the same key is
        the same job)."""
        waiting, taking = intake_keys(self.settings)
        moved = 0
        while self.connection.lmove(taking, waiting, "LEFT", "RIGHT") is not None:
            moved += 1
        return moved

    def run(self) -> None:
        self.recover()
        while not self._stop.is_set():
            try:
                self.take(timeout=1.0)
            except Exception:  # Redis away, a bad document: say so and go on
                log.exception("intake failed")
                self._stop.wait(1.0)

    def take(self, timeout: float = 0.0) -> Job | None:
        waiting, taking = intake_keys(self.settings)
        if timeout > 0:
            raw = self.connection.blmove(waiting, taking, timeout, "RIGHT", "LEFT")
        else:  # BLMOVE's 0 would wait forever
            raw = self.connection.lmove(waiting, taking, "RIGHT", "LEFT")
        if raw is None:
            return None
        try:
            request = json.loads(raw)
            job = submit(
                self.queues[request.get("kind", INTERACTIVE)],
                self.settings,
                request["func"],
                *request.get("args", []),
                key=request.get("key"),
                description=request.get("about", ""),
            )
        except (ValueError, KeyError, TypeError):
            log.error("intake: dropped a request that is not one: %.200r", raw)
            job = None
        self.connection.lrem(taking, 1, raw)
        return job
