"""Two-person approvals for `pause` and `delete-old`, bound to the conditions they were asked in.

An approval request names the swap, the step, who asked, the plan fingerprint and a digest of
the live state at the time. A second person in the approvers set grants it; the engine consumes
it once, only while the fingerprint and digest are still the same and it has not expired:

    pending --grant--> granted --consume--> used
       |  ^                  |
       |  +----withdraw------+              (only by its approver, only before it is used)
       |                     |
       +--> superseded       +--> expired   (pending also expires)
       +--> expired
       +--deny--> denied                    (by an approver, not the requester: never granted)

A pending request waits at most `ttl_s` for a second person; a grant is good for `ttl_s` from
the moment it is given, so an approval asked for ahead of the outage costs the outage nothing.
The person who granted an approval may withdraw it (in Slack: remove the reaction) until a step
uses it: the request is pending again, without an approver, until the grant's expiry. An approver
other than the requester may deny a pending request instead (in Slack: the Deny button): it can
no longer be granted, and the step stays unapproved until someone asks again.
Each status change is one Lua script that checks the current status and expiry, sets the new
status and appends its audit entry, so two people reacting at once, or Slack delivering the same
reaction twice, give exactly one grant. Refusals change nothing and are audited too.

Keys, beside the store's (see store.py): `{p}swap:{id}:approvals` (zset of request ids by
sequence), `{p}swap:{id}:approvals:seq` (counter), `{p}swap:{id}:approval:{rid}` (hash).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any, cast

from pydantic import BaseModel

from swapbot.swap.store import Store, as_text, audit_fields, iso, redis_fields

__all__ = [
    "ApprovalRequest",
    "ApprovalStatus",
    "Approvals",
    "Decision",
    "Denial",
    "Verdict",
    "Withdrawal",
    "SYSTEM",
]

DEFAULT_TTL_S = 15 * 60
SYSTEM = "swapbot"  # the actor of what nobody did by hand: expiry


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    GRANTED = "granted"
    USED = "used"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    DENIED = "denied"


class ApprovalRequest(BaseModel):
    id: str  # "{step}-{n}", e.g. "pause-3": short enough to type in `approve pause-3`
    swap_id: str
    step: str
    requester: str
    fingerprint: str
    live_digest: str
    note: str = ""
    status: ApprovalStatus = ApprovalStatus.PENDING
    requested_at: str
    requested_epoch: float
    expires_at: str
    expires_epoch: float
    approver: str | None = None
    granted_at: str | None = None
    used_at: str | None = None
    used_epoch: float | None = None
    used_by: str | None = None
    expired_at: str | None = None
    superseded_by: str | None = None
    denied_by: str | None = None
    denied_at: str | None = None


class Verdict(StrEnum):
    GRANTED = "granted"
    UNKNOWN = "unknown"
    OWN_STEP = "own-step"
    NOT_APPROVER = "not-approver"
    EXPIRED = "expired"
    ALREADY_GRANTED = "already-granted"
    ALREADY_USED = "already-used"
    SUPERSEDED = "superseded"
    PLAN_CHANGED = "plan-changed"
    LIVE_CHANGED = "live-changed"
    WITHDRAWN = "withdrawn"
    NOT_GRANTER = "not-granter"  # withdraw: no approval of theirs to take back
    DENIED = "denied"  # deny: done
    ALREADY_DENIED = "already-denied"


class Decision(BaseModel):
    granted: bool
    verdict: Verdict
    reason: str
    request: ApprovalRequest | None = None


class Denial(BaseModel):
    denied: bool
    verdict: Verdict
    reason: str
    request: ApprovalRequest | None = None


class Withdrawal(BaseModel):
    withdrawn: bool
    verdict: Verdict
    reason: str
    request: ApprovalRequest | None = None


# Move one request from an allowed status to another and audit it, all or nothing.
# KEYS[1] request hash, KEYS[2] audit stream.
# ARGV[1] allowed statuses, space separated; ARGV[2] expiry rule: live (must not have expired at
# ARGV[3]) | due (must have) | any; ARGV[4] n, then n field/value pairs to set; then m, then m
# fields to delete; then g, then g field/value pairs the hash must hold; then the audit entry's
# field/value pairs. Returns 'ok', or why not: 'unknown', 'expired', 'live', 'moved' (a field
# differs from what it must hold), or the status. Every check comes before the first write.
_MOVE = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'unknown' end
if not string.find(' ' .. ARGV[1] .. ' ', ' ' .. status .. ' ', 1, true) then return status end
local expired = tonumber(redis.call('HGET', KEYS[1], 'expires_epoch')) <= tonumber(ARGV[3])
if ARGV[2] == 'live' and expired then return 'expired' end
if ARGV[2] == 'due' and not expired then return 'live' end
local i = 4
local n = tonumber(ARGV[i])
local set = {}
for j = i + 1, i + 2 * n do set[#set + 1] = ARGV[j] end
i = i + 2 * n + 1
local m = tonumber(ARGV[i])
local unset = {}
for j = i + 1, i + m do unset[#unset + 1] = ARGV[j] end
i = i + m + 1
local g = tonumber(ARGV[i])
for j = i + 1, i + 2 * g, 2 do
  if redis.call('HGET', KEYS[1], ARGV[j]) ~= ARGV[j + 1] then return 'moved' end
end
i = i + 2 * g + 1
local audit = {}
for j = i, #ARGV do audit[#audit + 1] = ARGV[j] end
if #set > 0 then redis.call('HSET', KEYS[1], unpack(set)) end
if #unset > 0 then redis.call('HDEL', KEYS[1], unpack(unset)) end
redis.call('XADD', KEYS[2], '*', unpack(audit))
return 'ok'
"""


def _short(epoch: float) -> str:
    return iso(epoch)[11:19] + " UTC"


class Approvals:
    """Request, grant, consume and expire approvals of one store's swaps."""

    def __init__(
        self, store: Store, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.time
    ):
        self.store = store
        self.ttl_s = ttl_s
        self.clock = clock
        self._move = store.redis.register_script(_MOVE)

    # -- reads ------------------------------------------------------------------------------
    def get(self, swap_id: str, request_id: str) -> ApprovalRequest | None:
        raw = self.store.redis.hgetall(self._key(swap_id, request_id))
        return _request(raw) if raw else None

    def requests(self, swap_id: str, step: str | None = None) -> list[ApprovalRequest]:
        """Every request of the swap (or of one step), oldest first."""
        # Without scores ZRANGE answers the members alone (redis-py types every form at once).
        ids = cast(
            list[bytes | str],
            self.store.redis.zrange(self.store.swap_key(swap_id, "approvals"), 0, -1),
        )
        with self.store.redis.pipeline(transaction=False) as pipe:
            for rid in ids:
                pipe.hgetall(self._key(swap_id, as_text(rid)))
            rows = pipe.execute()
        found = [_request(raw) for raw in rows if raw]
        return [r for r in found if step is None or r.step == step]

    def pending(self, swap_id: str) -> list[ApprovalRequest]:
        """Requests waiting for a second person and not yet expired, oldest first."""
        now = self.clock()
        return [
            r
            for r in self.requests(swap_id)
            if r.status is ApprovalStatus.PENDING and r.expires_epoch > now
        ]

    # -- transitions ------------------------------------------------------------------------
    def request(
        self,
        swap_id: str,
        step: str,
        requester: str,
        fingerprint: str,
        live_digest: str,
        note: str = "",
    ) -> ApprovalRequest:
        """Ask for a second person's approval of `step`; older pending requests for it are void."""
        r = self.store.redis
        now = self.clock()
        seq = r.incr(self.store.swap_key(swap_id, "approvals", "seq"))
        req = ApprovalRequest(
            id=f"{step}-{seq}",
            swap_id=swap_id,
            step=step,
            requester=requester,
            fingerprint=fingerprint,
            live_digest=live_digest,
            note=note,
            requested_at=iso(now),
            requested_epoch=now,
            expires_at=iso(now + self.ttl_s),
            expires_epoch=now + self.ttl_s,
        )
        detail = {
            "request": req.id,
            "fingerprint": fingerprint,
            "live_digest": live_digest,
            "expires_at": req.expires_at,
            "note": note,
        }
        with r.pipeline(transaction=True) as pipe:
            pipe.hset(self._key(swap_id, req.id), mapping=redis_fields(_fields(req)))
            pipe.zadd(self.store.swap_key(swap_id, "approvals"), {req.id: seq})
            pipe.xadd(
                self._audit_key(swap_id),
                redis_fields(audit_fields(now, requester, "approval.requested", step, detail)),
            )
            pipe.execute()
        # Created first, superseding after: of two requests made at once, the later one stands.
        for old in self.requests(swap_id, step):
            if old.status is ApprovalStatus.PENDING and _seq(old.id) < seq:
                self._transition(
                    old,
                    allowed=("pending",),
                    expiry="any",
                    changes={"status": "superseded", "superseded_by": req.id},
                    actor=requester,
                    action="approval.superseded",
                    detail={"request": old.id, "by": req.id},
                    now=now,
                )
        return req

    def grant(
        self,
        swap_id: str,
        request_id: str,
        approver: str,
        approvers: Iterable[str],
        *,
        fingerprint: str,
        live_digest: str,
        at: float | None = None,
    ) -> Decision:
        """A second person approves request `request_id`, seen under the current conditions.

        `at` is when the person acted (a Slack event's own time): a retried delivery that arrives
        late is judged on when the reaction was made, never on a time later than now."""
        now = self.clock()
        seen = min(at, now) if at is not None else now
        req = self.get(swap_id, request_id)
        refusal = self._refusal(req, request_id, approver, set(approvers), seen)
        if refusal is None:
            assert req is not None  # _refusal refuses a missing request
            refusal = _changed(req, fingerprint, live_digest)
            if refusal is None:
                if self._grant(req, approver, now=now, seen=seen):
                    granted = self.get(swap_id, request_id)
                    return Decision(
                        granted=True,
                        verdict=Verdict.GRANTED,
                        reason=f"{approver} approved {req.step} ({req.id}) for {req.requester}",
                        request=granted,
                    )
                # Someone else moved it first: explain from what it is now.
                req = self.get(swap_id, request_id)
                refusal = self._refusal(req, request_id, approver, set(approvers), seen)
                refusal = refusal or (Verdict.EXPIRED, f"request {request_id} expired")
        verdict, reason = self._refused(
            swap_id, req, request_id, approver, refusal, "approval.refused", now
        )
        return Decision(granted=False, verdict=verdict, reason=reason, request=req)

    def _refused(
        self,
        swap_id: str,
        req: ApprovalRequest | None,
        request_id: str,
        actor: str,
        refusal: tuple[Verdict, str],
        action: str,
        now: float,
    ) -> tuple[Verdict, str]:
        """A refused grant or denial, audited; a request found past its time is recorded
        expired (once) first."""
        verdict, reason = refusal
        if req is not None and verdict is Verdict.EXPIRED and req.status is ApprovalStatus.PENDING:
            self._expire(req, now)
        self.store.audit(
            swap_id,
            actor,
            action,
            step=req.step if req else None,
            detail={"request": request_id, "verdict": verdict.value, "reason": reason},
            at=now,
        )
        return verdict, reason

    def _grant(self, req: ApprovalRequest, approver: str, *, now: float, seen: float) -> bool:
        """Move `req` from pending to granted, unless someone else moved it first."""
        answer = self._transition(
            req,
            allowed=("pending",),
            expiry="live",
            changes={
                "status": "granted",
                "approver": approver,
                "granted_at": iso(now),
                "expires_at": iso(now + self.ttl_s),
                "expires_epoch": repr(now + self.ttl_s),
            },
            actor=approver,
            action="approval.granted",
            detail={
                "request": req.id,
                "requester": req.requester,
                "expires_at": iso(now + self.ttl_s),
            },
            now=now,
            seen=seen,
        )
        return answer == "ok"

    def consume(
        self,
        swap_id: str,
        step: str,
        *,
        fingerprint: str,
        live_digest: str,
        actor: str = SYSTEM,
    ) -> ApprovalRequest | None:
        """Take (once) a granted, unexpired approval of `step` under the same conditions."""
        now = self.clock()
        for req in reversed(self.requests(swap_id, step)):
            if req.status is not ApprovalStatus.GRANTED:
                continue
            if req.expires_epoch <= now:
                self._expire(req, now)
                continue
            if _changed(req, fingerprint, live_digest):
                continue
            answer = self._transition(
                req,
                allowed=("granted",),
                expiry="live",
                changes={
                    "status": "used",
                    "used_at": iso(now),
                    "used_epoch": repr(now),
                    "used_by": actor,
                },
                actor=actor,
                action="approval.used",
                detail={"request": req.id, "requester": req.requester, "approver": req.approver},
                now=now,
            )
            if answer == "ok":
                return self.get(swap_id, req.id)
        return None

    def withdraw(self, swap_id: str, request_id: str, actor: str) -> Withdrawal:
        """The person who granted `request_id` takes the approval back before a step uses it:
        the request is pending again, without an approver, until the grant's expiry. Only its
        approver may, and only while it is granted: a used approval stays used."""
        now = self.clock()
        req = self.get(swap_id, request_id)
        refusal = _not_withdrawable(req, request_id, actor, now)
        if refusal is None:
            assert req is not None  # _not_withdrawable refuses a missing request
            answer = self._transition(
                req,
                allowed=("granted",),
                expiry="live",
                changes={"status": "pending"},
                unset=("approver", "granted_at"),
                holding={"approver": actor},
                actor=actor,
                action="approval.withdrawn",
                detail={
                    "request": req.id,
                    "requester": req.requester,
                    "granted_at": req.granted_at,
                },
                now=now,
            )
            if answer == "ok":
                return Withdrawal(
                    withdrawn=True,
                    verdict=Verdict.WITHDRAWN,
                    reason=f"{actor} withdrew the approval of {req.step} ({req.id}); it waits "
                    "for a second person again",
                    request=self.get(swap_id, request_id),
                )
            # Used, expired or withdrawn meanwhile: explain from what it is now.
            req = self.get(swap_id, request_id)
            refusal = _not_withdrawable(req, request_id, actor, now)
            refusal = refusal or (Verdict.EXPIRED, f"request {request_id} expired")
        verdict, reason = refusal
        if req is not None and req.approver == actor:
            # Their own approval, which can no longer be taken back: audited. (Anyone else's
            # removed reaction withdraws nothing and is nobody's business.)
            if verdict is Verdict.EXPIRED and req.status is ApprovalStatus.GRANTED:
                self._expire(req, now)
            self.store.audit(
                swap_id,
                actor,
                "approval.withdraw-refused",
                step=req.step,
                detail={"request": request_id, "verdict": verdict.value, "reason": reason},
                at=now,
            )
        return Withdrawal(withdrawn=False, verdict=verdict, reason=reason, request=req)

    def deny(self, swap_id: str, request_id: str, actor: str, approvers: Iterable[str]) -> Denial:
        """An approver other than the requester denies a pending request: it can no longer be
        granted (the step stays unapproved until someone asks again). The same rules as a grant
        decide who may, and the same one-shot move as a grant makes a deny and a grant given at
        once end in one of the two. Refusals change nothing and are audited."""
        now = self.clock()
        req = self.get(swap_id, request_id)
        refusal = self._refusal(req, request_id, actor, set(approvers), now, verb="deny")
        if refusal is None:
            assert req is not None  # _refusal refuses a missing request
            answer = self._transition(
                req,
                allowed=("pending",),
                expiry="live",
                changes={"status": "denied", "denied_by": actor, "denied_at": iso(now)},
                actor=actor,
                action="approval.denied",
                detail={"request": req.id, "requester": req.requester},
                now=now,
            )
            if answer == "ok":
                return Denial(
                    denied=True,
                    verdict=Verdict.DENIED,
                    reason=f"{actor} denied {req.step} ({req.id}) for {req.requester}: it can no "
                    "longer be approved; ask for a new approval",
                    request=self.get(swap_id, request_id),
                )
            # Granted, denied or expired meanwhile: explain from what it is now.
            req = self.get(swap_id, request_id)
            refusal = self._refusal(req, request_id, actor, set(approvers), now, verb="deny")
            refusal = refusal or (Verdict.EXPIRED, f"request {request_id} expired")
        verdict, reason = self._refused(
            swap_id, req, request_id, actor, refusal, "approval.deny-refused", now
        )
        return Denial(denied=False, verdict=verdict, reason=reason, request=req)

    def why_not(self, swap_id: str, step: str, *, fingerprint: str, live_digest: str) -> str:
        """Why `consume` finds no approval of `step` to use, in a sentence for the channel."""
        now = self.clock()
        found = self.requests(swap_id, step)
        if not found:
            return f"{step} needs a second person's approval and none was requested"
        granted = [r for r in found if r.status is ApprovalStatus.GRANTED]
        req = granted[-1] if granted else found[-1]
        expired = req.status is ApprovalStatus.EXPIRED or (
            req.status in (ApprovalStatus.PENDING, ApprovalStatus.GRANTED)
            and req.expires_epoch <= now
        )
        if expired:
            return f"the approval {req.id} of {step} expired at {_short(req.expires_epoch)}"
        if req.status is ApprovalStatus.USED:
            return f"the approval {req.id} of {step} was used at {req.used_at}; ask for a new one"
        if req.status is ApprovalStatus.DENIED:
            return f"{req.id} of {step} was denied by {req.denied_by}; ask for a new approval"
        changed = _changed(req, fingerprint, live_digest)
        if changed:
            return changed[1]
        if req.status is ApprovalStatus.PENDING:
            return (
                f"{req.id} by {req.requester} is waiting for a second person "
                f"(until {_short(req.expires_epoch)})"
            )
        return f"the approval {req.id} of {step} can be used"

    def expire_due(self, swap_id: str) -> list[ApprovalRequest]:
        """Mark every pending or granted request past its expiry as expired, auditing each once."""
        now = self.clock()
        done = []
        for req in self.requests(swap_id):
            live = req.status in (ApprovalStatus.PENDING, ApprovalStatus.GRANTED)
            if live and req.expires_epoch <= now and self._expire(req, now):
                expired = self.get(swap_id, req.id)
                if expired is not None:  # (just written: a request is never deleted)
                    done.append(expired)
        return done

    # -- internals --------------------------------------------------------------------------
    @staticmethod
    def _refusal(
        req: ApprovalRequest | None,
        request_id: str,
        approver: str,
        approvers: set[str],
        now: float,
        *,
        verb: str = "approve",
    ) -> tuple[Verdict, str] | None:
        """Why `approver` may not grant (or, with `verb="deny"`, deny) `req` now, or None.
        Conditions are checked apart."""
        if req is None:
            return Verdict.UNKNOWN, f"there is no approval request {request_id}"
        if approver == req.requester:
            return (
                Verdict.OWN_STEP,
                f"{approver} asked for {req.step} and cannot {verb} it; a second person must",
            )
        if approver not in approvers:
            return Verdict.NOT_APPROVER, f"{approver} is not one of the approvers"
        if req.status is ApprovalStatus.SUPERSEDED:
            return (
                Verdict.SUPERSEDED,
                f"{req.id} was replaced by a newer request, {req.superseded_by}",
            )
        if req.status is ApprovalStatus.GRANTED:
            return (
                Verdict.ALREADY_GRANTED,
                f"{req.id} was already approved by {req.approver} at {req.granted_at}",
            )
        if req.status is ApprovalStatus.USED:
            return Verdict.ALREADY_USED, f"{req.id} was already approved and used at {req.used_at}"
        if req.status is ApprovalStatus.DENIED:
            return (
                Verdict.ALREADY_DENIED,
                f"{req.id} was denied by {req.denied_by} at {req.denied_at}; ask for a new approval",
            )
        if req.status is ApprovalStatus.EXPIRED or req.expires_epoch <= now:
            return (
                Verdict.EXPIRED,
                f"{req.id} expired at {_short(req.expires_epoch)}; ask for a new approval",
            )
        return None

    def _expire(self, req: ApprovalRequest, now: float) -> bool:
        answer = self._transition(
            req,
            allowed=("pending", "granted"),
            expiry="due",
            changes={"status": "expired", "expired_at": iso(now)},
            actor=SYSTEM,
            action="approval.expired",
            detail={"request": req.id, "requester": req.requester, "was": req.status.value},
            now=now,
        )
        return answer == "ok"

    def _transition(
        self,
        req: ApprovalRequest,
        *,
        allowed: tuple[str, ...],
        expiry: str,
        changes: dict[str, str],
        actor: str,
        action: str,
        detail: dict[str, Any],
        now: float,
        seen: float | None = None,
        unset: tuple[str, ...] = (),
        holding: dict[str, str] | None = None,
    ) -> str:
        entry = audit_fields(now, actor, action, req.step, detail)
        # expiry is judged at `seen` (when the person acted), the audit entry is dated now
        args: list[str | int] = [" ".join(allowed), expiry, repr(now if seen is None else seen)]
        args += [len(changes), *(str(x) for kv in changes.items() for x in kv)]
        args += [len(unset), *unset]
        args += [len(holding or {}), *(str(x) for kv in (holding or {}).items() for x in kv)]
        args += [x for kv in entry.items() for x in kv]
        keys = [self._key(req.swap_id, req.id), self._audit_key(req.swap_id)]
        # The script answers a word ('ok', or why not); redis-py leaves its reply untyped.
        return as_text(cast(bytes | str, self._move(keys=keys, args=args)))

    def _key(self, swap_id: str, request_id: str) -> str:
        return self.store.swap_key(swap_id, "approval", request_id)

    def _audit_key(self, swap_id: str) -> str:
        return self.store.swap_key(swap_id, "audit")


def _changed(
    req: ApprovalRequest, fingerprint: str, live_digest: str
) -> tuple[Verdict, str] | None:
    if req.fingerprint != fingerprint:
        return (
            Verdict.PLAN_CHANGED,
            f"the plan changed since {req.id} was requested (fingerprint {req.fingerprint} "
            f"then, {fingerprint} now); ask for a new approval",
        )
    if req.live_digest != live_digest:
        return (
            Verdict.LIVE_CHANGED,
            f"the live state changed since {req.id} was requested; ask for a new approval",
        )
    return None


def _not_withdrawable(
    req: ApprovalRequest | None, request_id: str, actor: str, now: float
) -> tuple[Verdict, str] | None:
    """Why `actor` may not withdraw `req` now, or None."""
    if req is None:
        return Verdict.UNKNOWN, f"there is no approval request {request_id}"
    if req.approver != actor:
        by = f" (approved by {req.approver})" if req.approver else ""
        return Verdict.NOT_GRANTER, f"{actor} has no approval of {req.id} to withdraw{by}"
    if req.status is ApprovalStatus.USED:
        return (
            Verdict.ALREADY_USED,
            f"{req.id} was already used by {req.used_by or 'a step'} at {req.used_at}; "
            "a used approval cannot be withdrawn",
        )
    if req.status is ApprovalStatus.EXPIRED or req.expires_epoch <= now:
        return Verdict.EXPIRED, f"{req.id} expired at {_short(req.expires_epoch)}"
    if req.status is not ApprovalStatus.GRANTED:
        return Verdict.NOT_GRANTER, f"{actor} has no approval of {req.id} to withdraw"
    return None


def _seq(request_id: str) -> int:
    return int(request_id.rsplit("-", 1)[1])


def _fields(req: ApprovalRequest) -> dict[str, str]:
    data = req.model_dump(mode="json", exclude_none=True)
    return {k: repr(v) if isinstance(v, float) else str(v) for k, v in data.items()}


def _request(raw: Mapping[bytes | str, bytes | str]) -> ApprovalRequest:
    return ApprovalRequest.model_validate({as_text(k): as_text(v) for k, v in raw.items()})
