"""The engine's durable state in Redis: a swap lease with a fencing token, checkpoints, records,
the audit trail and the event stream, as a small class over the keys below.

Every key starts with the store's prefix `{p}` (SWAPBOT_REDIS_PREFIX); `{id}` is a swap id.

| key                            | type   | holds                                                  |
|--------------------------------|--------|--------------------------------------------------------|
| `{p}swap:current`              | string | id of the active swap                                  |
| `{p}swap:{id}:plan`            | string | the plan, JSON (opaque here)                           |
| `{p}swap:{id}:steps`           | hash   | step name -> Checkpoint JSON                            |
| `{p}swap:{id}:records`         | hash   | name -> JSON kept for rollback (formation, search_path) |
| `{p}records`                   | hash   | name -> JSON of no one swap (`probe`: what /hcswap probe found) |
| `{p}swap:{id}:confirmations`   | hash   | what -> {by, at}: things a person confirmed (not lease-guarded) |
| `{p}swap:{id}:lock`            | string | "fence:since_ms:runner", SET NX PX: who runs the swap   |
| `{p}swap:{id}:fence`           | string | INCR counter: each lease gets a larger fencing token    |
| `{p}swap:{id}:audit`           | stream | audit entries {at, actor, action, step, detail}; never trimmed |
| `{p}swap:{id}:events`          | stream | events for front ends, {event: JSON}; MAXLEN ~ 10000    |
| `{p}swap:{id}:approvals`       | zset   | approval request ids, by sequence (see approvals.py)    |
| `{p}swap:{id}:approvals:seq`   | string | INCR counter for approval request ids                   |
| `{p}swap:{id}:approval:{rid}`  | hash   | one approval request (see approvals.py)                 |
| `{p}watcher:leader`            | string | the watcher's leader lease, same format as a swap lock   |
| `{p}watcher:leader:fence`      | string | its fencing counter                                     |
| `{p}dedupe:{key}`              | string | SET NX EX marker: this Slack retry / event id was seen  |

State writes (plan, checkpoints, records, `swap:current`) take the Lease and go through
`transition(lease)`: one MULTI/EXEC under WATCH of the lock, applied only while the lock still
holds that lease's exact value, else `LeaseLost` and nothing changes. So a runner paused past its
TTL cannot overwrite the progress of the runner that took over. The lock value starts with the
fence and the time it was taken, so `holder()` can say who and since when, whatever the runner's
name contains.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast, overload

import redis
from pydantic import BaseModel, ConfigDict, Field
from redis.typing import EncodableT, FieldT

log = logging.getLogger(__name__)

__all__ = [
    "EVENTS_MAXLEN",
    "AuditEntry",
    "Checkpoint",
    "Heartbeat",
    "Lease",
    "LeaseLost",
    "LockInfo",
    "PublishedEvent",
    "StepStatus",
    "Store",
    "StoreError",
    "Transition",
    "as_text",
    "audit_fields",
    "iso",
    "redis_fields",
]

EVENTS_MAXLEN = 10_000
SWAP_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# A heartbeat renewing the lease touches the watched lock key and aborts a transaction in flight;
# that is no loss of the lease, so try again (the lock value is re-checked each time).
WATCH_RETRIES = 50

Clock = Callable[[], float]


class StoreError(Exception):
    """Something the store refuses to do."""


class LeaseLost(StoreError):
    """The lease is no longer the current holder of its lock; nothing was written."""

    def __init__(self, lease: Lease, holder: LockInfo | None):
        super().__init__(lease, holder)
        self.lease = lease
        self.holder = holder

    def __str__(self) -> str:
        now = f"now held by {self.holder.runner}" if self.holder else "now held by nobody"
        return (
            f"runner {self.lease.runner} lost its lease on {self.lease.resource} "
            f"(fence {self.lease.fence}); {now}"
        )


def iso(epoch: float) -> str:
    """ISO-8601 UTC with milliseconds, e.g. 2025-11-25T23:04:00.123Z."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


@overload
def as_text(value: bytes | str) -> str: ...
@overload
def as_text(value: bytes | str | None) -> str | None: ...
def as_text(value: bytes | str | None) -> str | None:
    """A Redis reply as text, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else value


def redis_fields(fields: Mapping[str, str]) -> dict[FieldT, EncodableT]:
    """Field/value pairs as redis-py's hset and xadd take them (a dict of its own types)."""
    return {k: v for k, v in fields.items()}


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


# -- models ------------------------------------------------------------------------------------
class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"  # acted; waiting on Heroku Connect or a person
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNDONE = "undone"


FINISHED = {StepStatus.DONE, StepStatus.SKIPPED, StepStatus.FAILED, StepStatus.UNDONE}


class Checkpoint(BaseModel):
    """Where one step of a swap stands. `runner` and `fence` are the lease that wrote it last."""

    step: str
    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    runner: str | None = None
    fence: int | None = None
    started_at: str | None = None
    started_epoch: float | None = None
    finished_at: str | None = None
    finished_epoch: float | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class Lease(BaseModel):
    """The right to write a swap's state (or to lead the watchers) while the lock holds `token`."""

    model_config = ConfigDict(frozen=True)

    resource: str  # "swap:{id}" or "watcher:leader"
    swap_id: str | None
    runner: str
    fence: int
    token: str
    ttl_ms: int
    acquired_at: str
    lock_key: str


class LockInfo(BaseModel):
    """Who holds a lock, since when, and for how much longer unless renewed."""

    model_config = ConfigDict(frozen=True)

    runner: str
    fence: int
    since: str
    since_epoch: float
    ttl_ms: int


class AuditEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    at: str
    actor: str
    action: str
    step: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class PublishedEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    event: dict[str, Any]


def audit_fields(
    at: float, actor: str, action: str, step: str | None, detail: dict[str, Any] | None
) -> dict[str, str]:
    """One audit stream entry's fields (also used by approvals.py inside its Lua transitions)."""
    return {
        "at": iso(at),
        "actor": actor,
        "action": action,
        "step": step or "",
        "detail": _dumps(detail or {}),
    }


def _audit_entry(
    entry_id: bytes | str | None, fields: Mapping[bytes | str, bytes | str] | None
) -> AuditEntry:
    # redis-py types a stream entry as it may come from XAUTOCLAIM (a deleted entry: no id or
    # fields); XRANGE never returns one.
    if entry_id is None or fields is None:
        raise StoreError("an audit entry without an id or fields")
    f = {as_text(k): as_text(v) for k, v in fields.items()}
    return AuditEntry(
        id=as_text(entry_id),
        at=f.get("at", ""),
        actor=f.get("actor", ""),
        action=f.get("action", ""),
        step=f.get("step") or None,
        detail=json.loads(f.get("detail") or "{}"),
    )


def _stream_rows(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """The entries of a one-stream XREAD reply, whether RESP2 or RESP3, bytes or str (its shape
    depends on the protocol, so it is taken apart by looking)."""
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3: {key: [[entries]]}
        (rows,) = reply.values()
        rows = rows[0] if rows and isinstance(rows[0], list) else rows
    else:  # RESP2: [[key, [entries]]]
        rows = reply[0][1]
    return [(as_text(i), {as_text(k): as_text(v) for k, v in f.items()}) for i, f in rows]


class Heartbeat:
    """Keeps a lease alive from a thread of its own while work runs (checks, acts and slow API
    calls included), renewing it every `every` seconds. Use as a context manager; `lost`
    turns true once a renewal finds the lease gone (fenced writes then fail on their own)."""

    def __init__(self, store: Store, lease: Lease, every: float):
        self.store, self.lease, self.every = store, lease, every
        self._lost = False
        self._renewed = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def lost(self) -> bool:
        """The lease is gone, or may be: no renewal got through for a whole TTL (Redis away),
        so another runner may hold the swap by now."""
        return self._lost or time.monotonic() - self._renewed > self.lease.ttl_ms / 1000

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                if not self.store.renew(self.lease):
                    self._lost = True
                    log.warning("heartbeat: %s", LeaseLost(self.lease, None))
                    return
                self._renewed = time.monotonic()
            except redis.RedisError as exc:  # Redis away for a moment: the next beat tries again
                log.warning("heartbeat could not renew the lease: %s", exc)


def _lock_info(token: str | None, pttl: int) -> LockInfo | None:
    if token is None:
        return None
    fence, since_ms, runner = token.split(":", 2)
    since = int(since_ms) / 1000
    return LockInfo(
        runner=runner, fence=int(fence), since=iso(since), since_epoch=since, ttl_ms=pttl
    )


# -- lock scripts --------------------------------------------------------------------------
# KEYS[1] lock, KEYS[2] fence counter; ARGV runner, ttl_ms, since_ms, floor. Returns the token
# or nil. The fence is above `floor`: fences recorded elsewhere (the journal) survive a Redis
# that lost its counter, so a new lease never carries a smaller fence than one already used.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local fence = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[4])
if fence <= floor then
  fence = floor + 1
  redis.call('SET', KEYS[2], fence)
end
local token = fence .. ':' .. ARGV[3] .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
return token
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Transition:
    """Writes to one swap queued to be applied together, only while the lease still holds it.

    Use through `Store.transition(lease)`; each method queues, nothing is written until the
    `with` block ends without an exception.
    """

    def __init__(self, store: Store, lease: Lease):
        if lease.swap_id is None:
            raise StoreError(f"a {lease.resource} lease cannot write a swap's state")
        self.store = store
        self.lease = lease
        self.swap_id = lease.swap_id
        self.writes: list[Callable[[redis.client.Pipeline], object]] = []
        self.step_updates: dict[str, dict[str, Any]] = {}
        self.checkpoints: dict[str, Checkpoint] = {}  # filled when applied

    def checkpoint(self, step: str, **fields: Any) -> None:
        """Update a step's checkpoint; unnamed fields keep their value. Timestamps follow status:
        `running` starts an attempt (started_at now, finish and error cleared); a finished
        status (done, skipped, failed, undone) sets finished_at."""
        unknown = set(fields) - (set(Checkpoint.model_fields) - {"step", "fence"})
        if unknown:
            raise TypeError(f"not a checkpoint field: {', '.join(sorted(unknown))}")
        now = self.store.clock()
        update = dict(fields)
        status = update.get("status")
        if status is not None:
            status = StepStatus(status)
            if status is StepStatus.RUNNING:
                update.setdefault("started_at", iso(now))
                update.setdefault("started_epoch", now)
                update.setdefault("finished_at", None)
                update.setdefault("finished_epoch", None)
                update.setdefault("error", None)
            elif status in FINISHED:
                update.setdefault("finished_at", iso(now))
                update.setdefault("finished_epoch", now)
        self.step_updates.setdefault(step, {}).update(update)

    def restore_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Write a checkpoint as it was recorded elsewhere (the journal), fence included."""
        key = self.store.swap_key(self.swap_id, "steps")
        data = checkpoint.model_dump_json()
        self.writes.append(lambda pipe: pipe.hset(key, checkpoint.step, data))

    def put_confirmation(self, what: str, value: dict[str, Any]) -> None:
        data = _dumps(value)
        key = self.store.swap_key(self.swap_id, "confirmations")
        self.writes.append(lambda pipe: pipe.hset(key, what, data))

    def put_record(self, name: str, value: Any) -> None:
        data = _dumps(value)
        key = self.store.swap_key(self.swap_id, "records")
        self.writes.append(lambda pipe: pipe.hset(key, name, data))

    def clear_records(self) -> None:
        key = self.store.swap_key(self.swap_id, "records")
        self.writes.append(lambda pipe: pipe.delete(key))

    def clear_confirmations(self) -> None:
        key = self.store.swap_key(self.swap_id, "confirmations")
        self.writes.append(lambda pipe: pipe.delete(key))

    def set_plan(self, plan: dict[str, Any]) -> None:
        data = _dumps(plan)
        key = self.store.swap_key(self.swap_id, "plan")
        self.writes.append(lambda pipe: pipe.set(key, data))

    def set_current(self) -> None:
        key, swap_id = self.store.key("swap", "current"), self.swap_id
        self.writes.append(lambda pipe: pipe.set(key, swap_id))

    def clear_current(self) -> None:
        """Forget that this swap is the active one (the swap is finished or abandoned)."""
        key = self.store.key("swap", "current")
        self.writes.append(lambda pipe: pipe.delete(key))

    def audit(
        self,
        actor: str,
        action: str,
        *,
        step: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        fields = audit_fields(self.store.clock(), actor, action, step, detail)
        self.writes.append(lambda pipe: self.store._add_audit(pipe, self.swap_id, fields))

    def publish(self, event: dict[str, Any]) -> None:
        self.writes.append(lambda pipe: self.store._add_event(pipe, self.swap_id, event))

    def _apply(self) -> None:
        store, lease = self.store, self.lease
        steps_key = store.swap_key(self.swap_id, "steps")
        with store.redis.pipeline(transaction=True) as pipe:
            for attempt in range(WATCH_RETRIES):
                try:
                    pipe.watch(lease.lock_key, steps_key)  # type: ignore[no-untyped-call]  # redis-py leaves Pipeline.watch unannotated
                    if as_text(pipe.get(lease.lock_key)) != lease.token:
                        raise LeaseLost(lease, store._holder(lease.lock_key))
                    merged = self._merged_checkpoints(pipe, steps_key)
                    pipe.multi()
                    for cp in merged.values():
                        pipe.hset(steps_key, cp.step, cp.model_dump_json())
                    for write in self.writes:
                        write(pipe)
                    pipe.execute()
                    self.checkpoints = merged
                    return
                except redis.WatchError:
                    # A heartbeat renewed the lock meanwhile: step aside a moment, so that a
                    # renewal loop cannot starve the write (a jittered, growing pause).
                    time.sleep(random.uniform(0, min(0.0005 * (attempt + 1), 0.01)))
                    continue
        raise LeaseLost(lease, store._holder(lease.lock_key))

    def _merged_checkpoints(
        self, pipe: redis.client.Pipeline, steps_key: str
    ) -> dict[str, Checkpoint]:
        merged = {}
        for step, update in self.step_updates.items():
            raw = as_text(pipe.hget(steps_key, step))
            base = json.loads(raw) if raw else {"step": step}
            base.update({"runner": self.lease.runner, **update, "fence": self.lease.fence})
            merged[step] = Checkpoint.model_validate(base)
        return merged


class Store:
    """Swap state over named Redis keys (layout in the module docstring)."""

    def __init__(self, client: redis.Redis, prefix: str = "swapbot:", *, clock: Clock = time.time):
        self.redis = client
        self.prefix = prefix
        self.clock = clock
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    # -- keys -----------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def swap_key(self, swap_id: str, *parts: str) -> str:
        if not SWAP_ID.match(swap_id):
            raise StoreError(f"{swap_id!r} is not a swap id (1-64 letters, digits and _.-)")
        return self.key("swap", swap_id, *parts)

    # -- leases -----------------------------------------------------------------------------
    def acquire(self, swap_id: str, runner: str, ttl_ms: int, *, floor: int = 0) -> Lease | None:
        """Take the swap's lock for `ttl_ms`, or None when another lease holds it. Its fence is
        larger than `floor` (the largest fence the journal has seen)."""
        return self._take(
            f"swap:{swap_id}",
            swap_id,
            self.swap_key(swap_id, "lock"),
            self.swap_key(swap_id, "fence"),
            runner,
            ttl_ms,
            floor,
        )

    def acquire_leader(self, runner: str, ttl_ms: int, role: str = "watcher") -> Lease | None:
        """Become the one `role` (watcher, notifier) that leads across processes and dynos;
        renew and release as any lease."""
        return self._take(
            f"{role}:leader",
            None,
            self.key(role, "leader"),
            self.key(role, "leader", "fence"),
            runner,
            ttl_ms,
        )

    def renew(self, lease: Lease, ttl_ms: int | None = None) -> bool:
        """Extend the lease (to `ttl_ms`, default its own TTL); False if it was lost."""
        ttl = ttl_ms if ttl_ms is not None else lease.ttl_ms
        return bool(self._renew(keys=[lease.lock_key], args=[lease.token, ttl]))

    def holds(self, lease: Lease) -> bool:
        """Whether `lease` still holds its lock (a write elsewhere is about to rely on it)."""
        return as_text(self.redis.get(lease.lock_key)) == lease.token

    def release(self, lease: Lease) -> bool:
        """Give the lock back; a lease that was lost releases nothing. True if it was held."""
        return bool(self._release(keys=[lease.lock_key], args=[lease.token]))

    def holder(self, swap_id: str) -> LockInfo | None:
        return self._holder(self.swap_key(swap_id, "lock"))

    def leader(self, role: str = "watcher") -> LockInfo | None:
        return self._holder(self.key(role, "leader"))

    def _take(
        self,
        resource: str,
        swap_id: str | None,
        lock: str,
        fence: str,
        runner: str,
        ttl_ms: int,
        floor: int = 0,
    ) -> Lease | None:
        if ttl_ms <= 0:
            raise StoreError("a lease needs a positive TTL")
        now = self.clock()
        args: list[str | int] = [runner, ttl_ms, int(now * 1000), int(floor)]
        # The script's reply is untyped in redis-py: the token, or nil when the lock is held.
        token = as_text(cast(bytes | str | None, self._acquire(keys=[lock, fence], args=args)))
        if token is None:
            return None
        return Lease(
            resource=resource,
            swap_id=swap_id,
            runner=runner,
            fence=int(token.split(":", 1)[0]),
            token=token,
            ttl_ms=ttl_ms,
            acquired_at=iso(now),
            lock_key=lock,
        )

    def _holder(self, lock: str) -> LockInfo | None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(lock)
            pipe.pttl(lock)
            token, pttl = pipe.execute()
        return _lock_info(as_text(token), pttl)

    # -- guarded state writes -----------------------------------------------------------------
    @contextmanager
    def transition(self, lease: Lease) -> Iterator[Transition]:
        """Queue several writes and apply them in one MULTI/EXEC, only while `lease` holds."""
        tx = Transition(self, lease)
        yield tx
        tx._apply()

    def checkpoint(self, lease: Lease, step: str, **fields: Any) -> Checkpoint:
        """Update one step's checkpoint (see `Transition.checkpoint`) and return it."""
        with self.transition(lease) as tx:
            tx.checkpoint(step, **fields)
        return tx.checkpoints[step]

    def put_record(self, lease: Lease, name: str, value: Any) -> None:
        with self.transition(lease) as tx:
            tx.put_record(name, value)

    def set_plan(self, lease: Lease, plan: dict[str, Any], *, current: bool = False) -> None:
        """Store the plan; with `current`, also make this swap the active one."""
        with self.transition(lease) as tx:
            tx.set_plan(plan)
            if current:
                tx.set_current()

    def confirm(self, swap_id: str, what: str, actor: str, at: float | None = None) -> None:
        """Record that a person confirmed something only a person can see (notification settings,
        External Objects). Not lease-guarded: a person confirms while a step waits for it."""
        at = self.clock() if at is None else at
        fields = audit_fields(at, actor, "confirmed", what, None)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self.swap_key(swap_id, "confirmations"), what, _dumps({"by": actor, "at": at})
            )
            self._add_audit(pipe, swap_id, fields)
            pipe.execute()

    def confirmations(self, swap_id: str) -> dict[str, dict[str, Any]]:
        raw = self.redis.hgetall(self.swap_key(swap_id, "confirmations"))
        return {as_text(k): json.loads(v) for k, v in raw.items()}

    def confirmation(self, swap_id: str, what: str) -> dict[str, Any] | None:
        raw = as_text(self.redis.hget(self.swap_key(swap_id, "confirmations"), what))
        return json.loads(raw) if raw else None

    # -- reads ------------------------------------------------------------------------------
    def current_swap(self) -> str | None:
        return as_text(self.redis.get(self.key("swap", "current")))

    def planned_swaps(self) -> set[str]:
        """Every swap Redis holds a plan of (a scan: for the Home tab, not for a step)."""
        head = self.key("swap") + ":"
        found = set()
        for key in self.redis.scan_iter(match=_glob_escape(head) + "*:plan", count=1000):
            swap_id = as_text(key)[len(head) : -len(":plan")]
            if SWAP_ID.match(swap_id):  # not a longer key that ends in :plan
                found.add(swap_id)
        return found

    def get_plan(self, swap_id: str) -> dict[str, Any] | None:
        raw = as_text(self.redis.get(self.swap_key(swap_id, "plan")))
        return json.loads(raw) if raw else None

    def checkpoints(self, swap_id: str) -> dict[str, Checkpoint]:
        raw = self.redis.hgetall(self.swap_key(swap_id, "steps"))
        return {as_text(k): Checkpoint.model_validate_json(v) for k, v in raw.items()}

    def get_checkpoint(self, swap_id: str, step: str) -> Checkpoint | None:
        raw = self.redis.hget(self.swap_key(swap_id, "steps"), step)
        return Checkpoint.model_validate_json(raw) if raw else None

    def get_record(self, swap_id: str, name: str) -> Any | None:
        raw = self.redis.hget(self.swap_key(swap_id, "records"), name)
        return json.loads(raw) if raw else None

    def some_records(self, swap_id: str, names: list[str]) -> dict[str, Any]:
        """The named records only (the export alone can be large): name -> value or None."""
        raw = self.redis.hmget(self.swap_key(swap_id, "records"), names)
        return {name: json.loads(v) if v else None for name, v in zip(names, raw, strict=True)}

    def records(self, swap_id: str) -> dict[str, Any]:
        raw = self.redis.hgetall(self.swap_key(swap_id, "records"))
        return {as_text(k): json.loads(v) for k, v in raw.items()}

    # -- records of no one swap (e.g. what `/hcswap probe` found) -----------------------------
    def put_global(self, name: str, value: Any) -> None:
        self.redis.hset(self.key("records"), name, json.dumps(value))

    def get_global(self, name: str) -> Any | None:
        raw = self.redis.hget(self.key("records"), name)
        return json.loads(raw) if raw else None

    # -- audit trail (kept whole) -------------------------------------------------------------
    def audit(
        self,
        swap_id: str,
        actor: str,
        action: str,
        *,
        step: str | None = None,
        detail: dict[str, Any] | None = None,
        at: float | None = None,
    ) -> str:
        """Append to the swap's audit trail; returns the entry id."""
        fields = audit_fields(self.clock() if at is None else at, actor, action, step, detail)
        return as_text(self._add_audit(self.redis, swap_id, fields))

    def history(
        self, swap_id: str, *, count: int = 100, after: str | None = None
    ) -> list[AuditEntry]:
        """Audit entries oldest first, starting after entry id `after` (exclusive)."""
        start = f"({after}" if after else "-"
        rows = self.redis.xrange(self.swap_key(swap_id, "audit"), start, "+", count=count)
        rows = rows or []  # typed optional by redis-py; XRANGE answers a list
        return [_audit_entry(entry_id, fields) for entry_id, fields in rows]

    def tail(self, swap_id: str, count: int = 20) -> list[AuditEntry]:
        """The last `count` audit entries, oldest first."""
        rows = self.redis.xrevrange(self.swap_key(swap_id, "audit"), "+", "-", count=count)
        rows = rows or []  # typed optional by redis-py; XREVRANGE answers a list
        return [_audit_entry(entry_id, fields) for entry_id, fields in reversed(rows)]

    # -- events (capped, for front ends to follow) --------------------------------------------
    def publish(self, swap_id: str, event: dict[str, Any]) -> str:
        """Add an event to the swap's capped stream; returns its id."""
        return as_text(self._add_event(self.redis, swap_id, event))

    def read_events(
        self, swap_id: str, after_id: str = "0-0", *, block_ms: int | None = None, count: int = 100
    ) -> list[PublishedEvent]:
        """Events after `after_id` ("$": only new ones, with `block_ms`); waits up to `block_ms`
        for the first when given, else returns at once."""
        key = self.swap_key(swap_id, "events")
        rows = _stream_rows(self.redis.xread({key: after_id}, count=count, block=block_ms))
        return [PublishedEvent(id=entry_id, event=json.loads(f["event"])) for entry_id, f in rows]

    # Each takes the client or a pipeline, so a transition can include them. The entry id they
    # return is the client's answer; a pipeline answers with `execute()`.
    def _add_audit(self, r: redis.Redis, swap_id: str, fields: dict[str, str]) -> bytes | str:
        return r.xadd(self.swap_key(swap_id, "audit"), redis_fields(fields))

    def _add_event(self, r: redis.Redis, swap_id: str, event: dict[str, Any]) -> bytes | str:
        key = self.swap_key(swap_id, "events")
        fields = redis_fields({"event": _dumps(event)})
        return r.xadd(key, fields, maxlen=EVENTS_MAXLEN, approximate=True)

    # -- de-duplication -----------------------------------------------------------------------
    def first_time(self, key: str, ttl_s: int) -> bool:
        """True the first time `key` is seen within `ttl_s` seconds (Slack retries, event ids)."""
        return bool(self.redis.set(self.key("dedupe", key), "1", nx=True, ex=ttl_s))

    # -- tests and "Redis lost the state" rehearsals ------------------------------------------
    def forget(self, swap_id: str) -> int:
        """Delete every key of the swap (and `swap:current` if it names it); returns how many."""
        pattern = _glob_escape(self.swap_key(swap_id)) + ":*"
        keys = list(self.redis.scan_iter(match=pattern, count=1000))
        current = self.key("swap", "current")
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.watch(current)  # type: ignore[no-untyped-call]  # redis-py leaves Pipeline.watch unannotated
            if as_text(pipe.get(current)) == swap_id:
                keys.append(current)
            pipe.multi()
            if keys:
                pipe.delete(*keys)
            pipe.execute()
        return len(keys)
