"""Serve the sandbox over HTTP on 127.0.0.1, with Heroku's auth rules, faults and a request log."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from swapbot._http import QuietServer
from swapbot.sandbox import api, state
from swapbot.sandbox.api import ApiError, Request, Response
from swapbot.sandbox.options import Assumptions, SandboxOptions
from swapbot.sandbox.scenarios import WriterSpec
from swapbot.sandbox.sim import Simulator
from swapbot.sandbox.traffic import Traffic

log = logging.getLogger(__name__)

RATE_LIMIT_REFILL_PER_SECOND = 75 / 60
# Request bodies not kept in the request log because they may carry secrets.
UNLOGGED_BODIES = ("/config-vars",)


class Sandbox:
    """One sandbox: a database, its simulator, and the HTTP server in front of them."""

    def __init__(self, database_url: str, options: SandboxOptions | None = None, port: int = 0):
        self.options = options or SandboxOptions()
        self.rng = random.Random(self.options.seed)
        self.pool = ConnectionPool(
            database_url, min_size=2, max_size=20, open=True, kwargs={"autocommit": False}
        )
        with self.pool.connection() as conn:
            stored = state.get_setting(conn, "assumptions")
            if stored is not None and options is None:
                self.options.assumptions = Assumptions.model_validate(stored)
            else:
                state.put_setting(conn, "assumptions", self.options.assumptions.model_dump())
        self.sim = Simulator(self.pool, self.options)
        self.database_url = database_url
        self.traffic: Traffic | None = None  # the apps writing through their dynos, if any
        self._buckets: dict[str, tuple[float, float]] = {}
        self._bucket_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.httpd = QuietServer(("127.0.0.1", port), _handler_for(self))
        self.httpd.daemon_threads = True

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def central_url(self) -> str:
        return f"{self.base_url}/hc-central"

    @property
    def platform_url(self) -> str:
        return f"{self.base_url}/platform"

    # -- lifecycle ----------------------------------------------------------------------
    def start(self, *, clock: bool = True) -> Sandbox:
        # A short poll: `stop` (shutdown) waits for the loop to see it, by default up to 0.5 s.
        self._spawn(lambda: self.httpd.serve_forever(poll_interval=0.02), "sandbox-http")
        if clock:
            self._spawn(self._run_clock, "sandbox-clock")
            with self.pool.connection() as conn:
                specs = [
                    WriterSpec.model_validate(w) for w in state.get_setting(conn, "writers", [])
                ]
            if specs:
                self.traffic = Traffic(self.database_url, self.pool, specs, self.options.seed)
                self.traffic.start()
        return self

    def _spawn(self, target, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _run_clock(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.options.tick_seconds):
            now = time.monotonic()
            try:
                self.sim.step(now - last)
            except Exception:  # the clock must never stop: log, and try again next tick
                log.exception("sandbox clock tick failed")
            last = now

    def stop(self) -> None:
        if self.traffic is not None:
            self.traffic.stop()
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self.pool.close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- Platform API rate limit -------------------------------------------------------
    def rate_limit_remaining(self, user: str, *, spend: bool) -> int:
        with self._bucket_lock:
            # The bucket's size is unconfirmed (assumption platform-rate-limit): the sandbox
            # plays either (Assumptions.rate_limit_bucket).
            bucket = float(self.options.assumptions.rate_limit_bucket)
            tokens, at = self._buckets.get(user, (bucket, time.monotonic()))
            now = time.monotonic()
            tokens = min(bucket, tokens + (now - at) * RATE_LIMIT_REFILL_PER_SECOND)
            if spend:
                tokens -= 1
            self._buckets[user] = (tokens, now)
            return max(0, int(tokens))

    # -- one request ---------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Response:
        parts = urlsplit(raw_path)
        path, query = parts.path.rstrip("/") or "/", dict(parse_qsl(parts.query))
        req = Request(method, path, query, headers, None, base_url=self.base_url)
        fault = None
        try:
            route, params, api_name = api.resolve(method, path)
            req.api = api_name
            if api_name != "admin":
                self._authenticate(req)
                fault = self._fault(f"{method} {path}")
                if fault in ("503", "500", "429"):
                    return self._log(req, self._fault_response(fault), fault)
                if fault == "slow":
                    time.sleep(self.options.slow_seconds)
            req.body = _parse_body(body)
            resp = self._dispatch(route, params, req)
        except ApiError as exc:
            resp = Response(exc.status, {"id": exc.error_id, "message": exc.message}, exc.headers)
        except Exception:
            log.exception("sandbox request %s %s failed", method, path)
            resp = Response(
                500, {"id": "internal_server_error", "message": "Internal server error."}
            )
        if req.api == "platform":
            # GET /account/rate-limits is free (https://devcenter.heroku.com/articles/platform-api-reference#rate-limits); every other call costs a token.
            spend = req.path != "/platform/account/rate-limits"
            resp.headers["RateLimit-Remaining"] = str(
                self.rate_limit_remaining(req.user, spend=spend)
            )
        return self._log(req, resp, fault) if req.api and req.api != "admin" else resp

    def _authenticate(self, req: Request) -> None:
        auth = req.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "Invalid credentials provided.")
        req.user = api.user_for_token(token.strip())
        if req.api == "platform":
            accept = req.headers.get("accept", "")
            if api.PLATFORM_ACCEPT not in accept.replace("  ", " "):
                raise ApiError(
                    406,
                    "not_acceptable",
                    "Please specify a version along with Heroku's API MIME type.",
                )
            if self.rate_limit_remaining(req.user, spend=False) <= 0:
                raise ApiError(
                    429,
                    "rate_limit",
                    "Your account reached the API rate limit.",
                    {"Retry-After": "60"},
                )

    def _fault(self, call: str) -> str | None:
        o = self.options
        if o.faults_only is not None and o.faults_only not in call:
            return None
        if o.faults <= 0 or self.rng.random() >= o.faults:
            return None
        return self.rng.choice(o.fault_kinds)

    @staticmethod
    def _fault_response(fault: str) -> Response:
        if fault == "429":
            return Response(
                429, {"id": "rate_limit", "message": "Too many requests."}, {"Retry-After": "1"}
            )
        return Response(
            int(fault), {"id": "unavailable", "message": "Service temporarily unavailable."}
        )

    def _dispatch(self, route: api.Route, params: dict[str, str], req: Request) -> Response:
        with self.pool.connection() as conn:
            result = route.handler(self, req, conn, **params)
        return result if isinstance(result, Response) else Response(200, result)

    def _log(self, req: Request, resp: Response, fault: str | None) -> Response:
        body = None if any(req.path.endswith(p) for p in UNLOGGED_BODIES) else req.body
        try:
            with self.pool.connection() as conn:
                conn.execute(
                    "INSERT INTO _hcsandbox.request_log (api, method, path, query, status, fault, body) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (
                        req.api,
                        req.method,
                        req.path,
                        "&".join(f"{k}={v}" for k, v in sorted(req.query.items())),
                        resp.status,
                        fault,
                        Jsonb(body) if body is not None else None,
                    ),
                )
        except Exception:
            log.exception("could not log a sandbox request")
        return resp


def _parse_body(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise ApiError(400, "bad_request", "The request body is not valid JSON.") from None


def _handler_for(sb: Sandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "swapbot-sandbox"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            resp = sb.handle(self.command, self.path, headers, body)
            payload = (
                b""
                if resp.body is None or resp.status == 204
                else json.dumps(resp.body, default=str).encode()
            )
            try:
                self.send_response(
                    resp.status,
                    HTTPStatus(resp.status).phrase
                    if resp.status in HTTPStatus._value2member_map_
                    else "",
                )
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Request-Id", uuid.uuid4().hex)
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if payload:
                    self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout); Heroku would have done the work all the same

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("sandbox %s", format % args)

    return Handler
