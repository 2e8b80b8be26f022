"""The Heroku clients over real HTTP on 127.0.0.1, against a server scripted per test.

The server answers each request with the next scripted reply (status, headers, body, delay, or a
dropped connection) and records what it received. Sleeps go to a fake, so retries cost nothing.
"""

from __future__ import annotations

import json
import logging
import pickle
import socket
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from pydantic import SecretStr
from requests.adapters import HTTPAdapter

from swapbot.heroku import (
    BadRequest,
    Conflict,
    ConnectClient,
    ConnectionNotFound,
    ConnectionRef,
    ExportDocument,
    Forbidden,
    FormationUpdate,
    HerokuApiError,
    HerokuError,
    MultipleConnections,
    NotAcceptable,
    NotFound,
    PlatformClient,
    RateLimited,
    RetryPolicy,
    ServerError,
    TransportError,
    Unauthorized,
    UnprocessableEntity,
)

TOKEN = "hrku-test-7f3a9c1e-token-must-never-leak"
# connect, read: a delayed reply of DELAY seconds is a read timeout; a prompt one, even on a
# loaded machine (8 test workers on 2 cores), is not
FAST = (2.0, 1.0)
DELAY = 2.5


# --- the scripted server -----------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict or list: JSON; str: sent as is; None: empty
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # close the connection without answering


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)

    def json(self) -> Any:
        return json.loads(self.body)


class FakeHeroku:
    def __init__(self, url: str):
        self.url = url
        self.replies: deque[Reply] = deque()
        self.seen: list[Seen] = []
        self.released = threading.Event()
        self._lock = threading.Lock()

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def take(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            if self.replies:
                return self.replies.popleft()
        return Reply(599, {"message": "no scripted reply left"})


class _Handler(BaseHTTPRequestHandler):
    def _handle(self) -> None:
        fake: FakeHeroku = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = fake.take(Seen(self.command, self.path, headers, body))
        if reply.delay:
            fake.released.wait(reply.delay)
        if reply.drop:
            self.close_connection = True
            return
        if isinstance(reply.body, dict | list):
            payload = json.dumps(reply.body).encode()
            content_type = "application/json"
        else:
            payload = (reply.body or "").encode()
            content_type = "text/plain"
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up waiting (a read-timeout test)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def heroku() -> Iterator[FakeHeroku]:
    with scripted_server() as fake:
        yield fake


@contextmanager
def scripted_server() -> Iterator[FakeHeroku]:
    """A FakeHeroku listening on 127.0.0.1 until the block ends (other test files use it too)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.block_on_close = False
    fake = FakeHeroku(f"http://127.0.0.1:{server.server_address[1]}")
    server.fake = fake  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.daemon = True
    thread.start()
    try:
        yield fake
    finally:
        fake.released.set()
        server.shutdown()
        server.server_close()


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


def policy(sleep: FakeSleep, **overrides: Any) -> RetryPolicy:
    # rand=1.0 makes the jitter its ceiling, so delays are 0.1, 0.2, 0.4, ...
    options: dict[str, Any] = {"sleep": sleep, "rand": lambda: 1.0, "base_delay": 0.1}
    options.update(overrides)
    return RetryPolicy(**options)


@pytest.fixture
def hc(heroku: FakeHeroku, sleep: FakeSleep) -> Iterator[ConnectClient]:
    client = ConnectClient(TOKEN, f"{heroku.url}/hc-central", timeout=FAST, retry=policy(sleep))
    yield client
    client.close()


@pytest.fixture
def platform(heroku: FakeHeroku, sleep: FakeSleep) -> Iterator[PlatformClient]:
    client = PlatformClient(TOKEN, f"{heroku.url}/platform", timeout=FAST, retry=policy(sleep))
    yield client
    client.close()


def ref_for(heroku: FakeHeroku, *, slash: bool = False, detail: bool = False) -> ConnectionRef:
    region_url = f"{heroku.url}/cell-1" + ("/" if slash else "")
    return ConnectionRef(
        id="abc",
        resource_name="herokuconnect-x",
        app_name="my-app",
        region_url=region_url,
        detail_url=f"{heroku.url}/cell-1/api/v3/connections/abc" if detail else None,
    )


def discovery_entry(heroku: FakeHeroku, conn_id: str, resource_name: str) -> dict[str, Any]:
    return {
        "id": conn_id,
        "resource_name": resource_name,
        "display_name": resource_name,
        "addon_type": "Sync",
        "app_name": "my-app",
        "app_id": "app-uuid",
        "region": "virginia",
        "region_url": f"{heroku.url}/cell-1/",
        "detail_url": f"{heroku.url}/cell-1/api/v3/connections/{conn_id}",
        "region_flag": "us",
    }


EXPORT = {
    "version": 1,
    "future_top_level": {"kept": True},
    "connection": {
        "app_name": "my-app",
        "name": "my-app:DATABASE_URL:schema1",
        "features": {"poll_db_no_merge": True, "some_new_flag": False},
    },
    "mappings": [
        {
            "object_name": "Contact",
            "future_mapping_field": 42,
            "config": {
                "access": "read_write",
                "sf_notify_enabled": False,
                "sf_polling_seconds": 600,
                "sf_max_daily_api_calls": 30000,
                "fields": {"Id": {}, "LastName": {}, "External_Key__c": {}},
                "indexes": {"Id": {"unique": True}, "External_Key__c": {"unique": True}},
                "upsert_field": "External_Key__c",
                "applied_at": "2026-01-02T03:04:05Z",
                "future_config_field": "x",
            },
        },
        {"object_name": "Account", "config": {"access": "read_only", "fields": {"Id": {}}}},
    ],
}


# --- headers -----------------------------------------------------------------------------------


def test_connect_client_sends_bearer_and_plain_json_headers(heroku, hc):
    heroku.script(Reply(200, {"count": 0, "results": []}))
    hc.discover("my-app")
    headers = heroku.seen[0].headers
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["accept"] == "application/json"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("swapbot/")


def test_platform_client_sends_versioned_accept_header(heroku, platform):
    heroku.script(Reply(200, {"id": "app-uuid", "name": "my-app", "maintenance": False}))
    platform.app("my-app")
    headers = heroku.seen[0].headers
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["accept"] == "application/vnd.heroku+json; version=3"
    assert headers["user-agent"].startswith("swapbot/")


def test_token_may_be_a_secret_str(heroku, sleep):
    heroku.script(Reply(200, {"remaining": 4000}))
    client = PlatformClient(SecretStr(TOKEN), heroku.url, timeout=FAST, retry=policy(sleep))
    assert client.rate_limit_remaining() == 4000
    assert heroku.seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert heroku.seen[0].path == "/account/rate-limits"


def test_empty_token_is_refused():
    with pytest.raises(ValueError, match="empty"):
        ConnectClient(SecretStr(" "))


# --- URLs --------------------------------------------------------------------------------------


def test_link_and_discover_keep_the_central_prefix_and_send_what_heroku_s_client_sends(heroku, hc):
    """As heroku/heroku-connect-plugin sends them: no `addon_type`, which no official client
    sends (an unknown parameter HC might reject or misread at the swap's first step)."""
    heroku.script(
        Reply(200, {"user": {"id": "u1", "email": "ops@example.com"}, "connections": []}),
        Reply(200, {"count": 1, "results": [discovery_entry(heroku, "abc", "herokuconnect-x")]}),
    )
    linked = hc.link("my-app")
    refs = hc.discover("my-app", "herokuconnect-x")
    link, search = heroku.seen
    assert (link.method, link.path, link.query) == ("POST", "/hc-central/auth/my-app", {})
    assert (search.method, search.path) == ("GET", "/hc-central/connections")
    assert search.query == {"app": ["my-app"], "resource_name": ["herokuconnect-x"]}
    assert linked.user == {"id": "u1", "email": "ops@example.com"}
    assert [r.id for r in refs] == ["abc"]
    assert refs[0].api_root == f"{heroku.url}/cell-1/api/v3"
    assert refs[0].region_flag == "us"  # an unlisted field, kept


@pytest.mark.parametrize("slash", [False, True], ids=["no-slash", "trailing-slash"])
def test_region_url_with_or_without_trailing_slash(heroku, hc, slash):
    heroku.script(Reply(202), Reply(202), Reply(200, {"count": 0, "results": []}))
    ref = ref_for(heroku, slash=slash)
    hc.pause(ref)
    hc.resume(ref)
    hc.errors(ref)
    assert [(s.method, s.target) for s in heroku.seen] == [
        ("POST", "/cell-1/api/v3/connections/abc/actions/pause"),
        ("POST", "/cell-1/api/v3/connections/abc/actions/resume"),
        ("GET", "/cell-1/api/v3/connections/abc/errors"),
    ]


def test_get_connection_uses_detail_url_then_falls_back_to_api_root(heroku, hc):
    body = {"id": "abc", "state": "IDLE", "mappings": [], "brand_new_field": [1, 2]}
    heroku.script(Reply(200, body), Reply(200, body))
    first = hc.get_connection(ref_for(heroku, detail=True))
    hc.get_connection(ref_for(heroku, slash=True))
    assert [s.target for s in heroku.seen] == [
        "/cell-1/api/v3/connections/abc?deep=true",
        "/cell-1/api/v3/connections/abc?deep=true",
    ]
    assert first.brand_new_field == [1, 2]
    assert first.model_dump()["brand_new_field"] == [1, 2]


def test_platform_paths_keep_prefix_and_quote_segments(heroku, platform):
    heroku.script(Reply(202), Reply(202), Reply(202))
    platform.restart_process_type("my-app", "web/../x")
    platform.restart_dyno("my-app", "web.1")
    platform.restart_all_dynos("my-app")
    assert [(s.method, s.target) for s in heroku.seen] == [
        ("DELETE", "/platform/apps/my-app/formations/web%2F..%2Fx"),
        ("DELETE", "/platform/apps/my-app/dynos/web.1"),
        ("DELETE", "/platform/apps/my-app/dynos"),
    ]


# --- retries of safe requests ------------------------------------------------------------------


def test_429_is_retried_after_the_retry_after_seconds(heroku, hc, sleep):
    heroku.script(
        Reply(429, {"id": "rate_limit", "message": "slow down"}, {"Retry-After": "7"}),
        Reply(200, {"count": 0, "results": []}),
    )
    ref = ref_for(heroku)
    assert hc.errors(ref).results == []
    assert len(heroku.seen) == 2
    assert sleep.delays == [7.0]


def test_503_is_retried_with_backoff(heroku, hc, sleep):
    heroku.script(Reply(503, "upstream busy"), Reply(502), Reply(200, {"count": 0}))
    hc.errors(ref_for(heroku))
    assert len(heroku.seen) == 3
    assert sleep.delays == [pytest.approx(0.1), pytest.approx(0.2)]


def test_dropped_connection_is_retried_for_safe_requests(heroku, hc, sleep):
    heroku.script(Reply(drop=True), Reply(202))
    hc.pause(ref_for(heroku))
    assert [s.path for s in heroku.seen] == ["/cell-1/api/v3/connections/abc/actions/pause"] * 2
    assert len(sleep.delays) == 1


def test_read_timeout_is_retried_for_safe_requests(heroku, hc, sleep):
    heroku.script(Reply(200, {"count": 0}, delay=DELAY), Reply(200, {"count": 3}))
    assert hc.errors(ref_for(heroku)).count == 3
    assert len(heroku.seen) == 2
    assert len(sleep.delays) == 1


def test_gives_up_after_max_attempts_with_typed_errors(heroku, sleep):
    client = ConnectClient(
        TOKEN, heroku.url, timeout=FAST, retry=policy(sleep, max_attempts=3, max_delay=0.15)
    )
    ref = ref_for(heroku)
    heroku.script(*[Reply(503, {"message": "down"})] * 3)
    with pytest.raises(ServerError) as server_error:
        client.errors(ref)
    assert server_error.value.status == 503
    assert len(heroku.seen) == 3
    assert sleep.delays == [pytest.approx(0.1), pytest.approx(0.15)]  # capped at max_delay

    heroku.script(*[Reply(429, {"id": "rate_limit"}, {"Retry-After": "2"})] * 3)
    with pytest.raises(RateLimited) as limited:
        client.errors(ref)
    assert limited.value.retry_after == 2.0
    assert len(heroku.seen) == 6

    heroku.script(*[Reply(drop=True)] * 3)
    with pytest.raises(TransportError) as dropped:
        client.errors(ref)
    assert dropped.value.attempts == 3
    assert len(heroku.seen) == 9


def test_retry_after_longer_than_allowed_is_not_waited_for(heroku, sleep):
    client = ConnectClient(TOKEN, heroku.url, retry=policy(sleep, max_retry_after=60))
    heroku.script(Reply(429, {"id": "rate_limit", "message": "later"}, {"Retry-After": "3600"}))
    with pytest.raises(RateLimited) as exc:
        client.errors(ref_for(heroku))
    assert exc.value.retry_after == 3600.0
    assert sleep.delays == []
    assert len(heroku.seen) == 1


def test_low_rate_limit_remaining_pauses_before_the_next_request(heroku, sleep):
    client = PlatformClient(
        TOKEN, heroku.url, retry=policy(sleep, rate_limit_floor=20, rate_limit_pause=10.0)
    )
    heroku.script(
        Reply(200, {"name": "my-app"}, {"RateLimit-Remaining": "5"}),
        Reply(200, {"name": "my-app"}, {"RateLimit-Remaining": "3000"}),
        Reply(200, {"name": "my-app"}),
    )
    client.app("my-app")
    assert sleep.delays == []
    client.app("my-app")
    assert sleep.delays == [pytest.approx(7.5)]  # 10 s * (20 - 5) / 20
    client.app("my-app")
    assert sleep.delays == [pytest.approx(7.5)]


def test_a_low_rate_limit_holds_every_thread_of_the_client(heroku, sleep):
    """The plan form describes objects eight at a time over one client: a low count seen by
    one request must hold the others too, not only the first to look."""
    import threading

    client = PlatformClient(
        TOKEN, heroku.url, retry=policy(sleep, rate_limit_floor=20, rate_limit_pause=10.0)
    )
    heroku.script(
        Reply(200, {"name": "my-app"}, {"RateLimit-Remaining": "5"}),
        *[Reply(200, {"name": "my-app"}) for _ in range(4)],
    )
    client.app("my-app")
    threads = [threading.Thread(target=client.app, args=("my-app",)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(sleep.delays) == 4  # each waited, not only the first
    assert sleep.delays[0] == pytest.approx(7.5)
    assert all(6.0 < d <= 7.5 for d in sleep.delays), sleep.delays


# --- requests that are not safe to repeat ------------------------------------------------------


def _unsafe_calls(hc: ConnectClient, platform: PlatformClient, ref: ConnectionRef):
    doc = ExportDocument.model_validate(EXPORT)
    return {
        "import": lambda: hc.import_config(ref, doc),
        "create_mapping": lambda: hc.create_mapping(ref, "Contact", {"access": "read_only"}),
        "update_mapping": lambda: hc.update_mapping(ref, "m1", "Contact", {"revision": 3}),
        "reload": lambda: hc.reload_mapping(ref, "m1"),
        "create_addon": lambda: platform.create_addon("my-app", plan="herokuconnect:demo"),
        "delete_addon": lambda: platform.delete_addon("my-app", "hc2"),
    }


UNSAFE = ["import", "create_mapping", "update_mapping", "reload", "create_addon", "delete_addon"]


@pytest.mark.parametrize("call", UNSAFE)
def test_unsafe_requests_are_not_retried_on_500(heroku, hc, platform, sleep, call):
    heroku.script(Reply(500, {"message": "boom"}), Reply(202, {"id": "x", "name": "x"}))
    with pytest.raises(ServerError):
        _unsafe_calls(hc, platform, ref_for(heroku))[call]()
    assert len(heroku.seen) == 1
    assert sleep.delays == []


@pytest.mark.parametrize("call", UNSAFE)
@pytest.mark.parametrize("failure", ["read-timeout", "dropped"])
def test_unsafe_requests_are_not_retried_after_a_timeout_or_drop(
    heroku, hc, platform, sleep, call, failure
):
    first = Reply(202, delay=DELAY) if failure == "read-timeout" else Reply(drop=True)
    heroku.script(first, Reply(202, {"id": "x", "name": "x"}))
    with pytest.raises(TransportError) as exc:
        _unsafe_calls(hc, platform, ref_for(heroku))[call]()
    assert exc.value.attempts == 1
    assert len(heroku.seen) == 1
    assert sleep.delays == []


@pytest.mark.parametrize("call", UNSAFE)
def test_unsafe_requests_are_retried_on_429(heroku, hc, platform, sleep, call):
    heroku.script(
        Reply(429, {"id": "rate_limit"}, {"Retry-After": "1"}),
        Reply(202, {"id": "x", "name": "x", "object_name": "Contact"}),
    )
    _unsafe_calls(hc, platform, ref_for(heroku))[call]()
    assert len(heroku.seen) == 2
    assert heroku.seen[0].body == heroku.seen[1].body
    assert sleep.delays == [1.0]


class _ConnectTimeoutOnce(HTTPAdapter):
    """Fails the first send as a connect timeout (nothing sent), then sends for real."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def send(self, request, **kwargs):
        if self.failures:
            self.failures -= 1
            raise requests.exceptions.ConnectTimeout("simulated connect timeout")
        return super().send(request, **kwargs)


def test_unsafe_request_is_retried_after_a_connect_timeout(heroku, sleep):
    session = requests.Session()
    session.mount("http://", _ConnectTimeoutOnce())
    client = ConnectClient(TOKEN, heroku.url, retry=policy(sleep), session=session)
    heroku.script(Reply(200))
    client.import_config(ref_for(heroku), ExportDocument.model_validate(EXPORT))
    assert len(heroku.seen) == 1
    assert len(sleep.delays) == 1


def test_unsafe_request_is_retried_when_the_connection_is_refused(sleep):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = PlatformClient(
        TOKEN, f"http://127.0.0.1:{port}", timeout=FAST, retry=policy(sleep, max_attempts=3)
    )
    with pytest.raises(TransportError) as exc:
        client.create_addon("my-app", plan="herokuconnect:demo")
    assert exc.value.attempts == 3
    assert exc.value.reason == "could not connect"
    assert len(sleep.delays) == 2


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (406, NotAcceptable),
        (409, Conflict),
        (422, UnprocessableEntity),
        (402, HerokuApiError),
    ],
)
def test_error_statuses_map_to_the_typed_tree(heroku, hc, status, cls):
    heroku.script(Reply(status, {"id": "some_id", "message": "went wrong"}))
    with pytest.raises(cls) as exc:
        hc.get_mapping(ref_for(heroku), "m1")
    assert type(exc.value) is cls
    assert isinstance(exc.value, HerokuError)
    assert (exc.value.status, exc.value.error_id, exc.value.message) == (
        status,
        "some_id",
        "went wrong",
    )
    assert (exc.value.method, exc.value.path) == ("GET", "/cell-1/api/v3/mappings/m1")
    assert len(heroku.seen) == 1  # 4xx is never retried


def test_error_str_names_method_path_status_id_and_message(heroku, hc):
    heroku.script(Reply(404, {"id": "not_found", "message": "Connection not found"}))
    with pytest.raises(NotFound) as exc:
        hc.export_config(ref_for(heroku))
    assert str(exc.value) == (
        "GET /cell-1/api/v3/connections/abc/actions/export -> 404 not_found: Connection not found"
    )


def test_error_message_falls_back_to_error_then_raw_body(heroku, hc):
    heroku.script(
        Reply(400, {"error": "Unsafe mapping change", "unsafe_mappings": ["Contact"]}),
        Reply(400, "<html>" + "x" * 500 + "</html>"),
    )
    ref = ref_for(heroku)
    with pytest.raises(BadRequest) as from_error:
        hc.pause(ref)
    assert from_error.value.message == "Unsafe mapping change"
    assert from_error.value.error_id is None
    assert str(from_error.value).endswith("-> 400: Unsafe mapping change")
    with pytest.raises(BadRequest) as from_text:
        hc.pause(ref)
    assert from_text.value.message.startswith("<html>xxx")
    assert len(from_text.value.message) <= 200


def test_5xx_after_retries_is_server_error_with_path(heroku, sleep):
    client = PlatformClient(TOKEN, heroku.url, retry=policy(sleep, max_attempts=2))
    heroku.script(Reply(502, "bad gateway"), Reply(500, {"id": "internal", "message": "oops"}))
    with pytest.raises(ServerError) as exc:
        client.formation("my-app")
    assert str(exc.value) == "GET /apps/my-app/formation -> 500 internal: oops"


def test_status_other_than_the_documented_one_is_an_error(heroku, hc):
    heroku.script(Reply(200, {}), Reply(200, {}))
    ref = ref_for(heroku)
    with pytest.raises(HerokuApiError, match="expected status 204"):
        hc.delete_mapping(ref, "m1")
    with pytest.raises(HerokuApiError, match="expected status 202"):
        hc.reload_mapping(ref, "m1")
    assert [(s.method, s.path) for s in heroku.seen] == [
        ("DELETE", "/cell-1/api/v3/mappings/m1"),
        ("POST", "/cell-1/api/v3/mappings/m1/actions/reload"),
    ]


def test_unusable_success_body_is_an_api_error(heroku, hc):
    heroku.script(Reply(200, "not json"), Reply(200, {"no_id": True}))
    ref = ref_for(heroku)
    with pytest.raises(HerokuApiError, match="not JSON"):
        hc.get_mapping(ref, "m1")
    with pytest.raises(HerokuApiError, match="unexpected Mapping"):
        hc.get_mapping(ref, "m1")


def test_errors_pickle(heroku, hc):
    heroku.script(Reply(429, {"id": "rate_limit", "message": "no"}, {"Retry-After": "999"}))
    with pytest.raises(RateLimited) as exc:
        hc.errors(ref_for(heroku))
    copy = pickle.loads(pickle.dumps(exc.value))
    assert (type(copy), str(copy), copy.retry_after) == (RateLimited, str(exc.value), 999.0)
    for error in (
        TransportError("GET", "/x", "read timeout", 3),
        ConnectionNotFound("my-app", "herokuconnect-x"),
        MultipleConnections("my-app", ["a", "b"]),
    ):
        assert str(pickle.loads(pickle.dumps(error))) == str(error)


def test_token_never_appears_in_errors_reprs_or_logs(heroku, hc, platform, caplog):
    caplog.set_level(logging.DEBUG)
    heroku.script(
        Reply(200, {"count": 0, "results": []}),
        Reply(401, {"id": "unauthorized", "message": "Invalid credentials provided."}),
        Reply(drop=True),
        Reply(200, {"DATABASE_URL": "postgres://u:pw@host/db"}),
    )
    ref = ref_for(heroku)
    hc.errors(ref)
    with pytest.raises(Unauthorized) as unauthorized:
        hc.get_mapping(ref, "m1")
    with pytest.raises(TransportError) as transport:
        hc.import_config(ref, ExportDocument.model_validate(EXPORT))
    config = platform.config_vars("my-app")
    texts = [
        str(unauthorized.value),
        repr(unauthorized.value),
        str(transport.value),
        repr(transport.value),
        repr(hc),
        repr(platform),
        repr(hc._transport),
        repr(hc._transport._session.auth),
        repr(config),
        caplog.text,
    ]
    assert all(TOKEN not in text for text in texts)
    assert "pw@host" not in repr(config) and "pw@host" not in caplog.text
    assert transport.value.__cause__ is None and transport.value.__suppress_context__
    debug = [r.getMessage() for r in caplog.records if r.name == "swapbot.heroku"]
    assert any(m.startswith("GET /cell-1/api/v3/connections/abc/errors -> 200 in ") for m in debug)
    assert any(m.startswith("GET /cell-1/api/v3/mappings/m1 -> 401 in ") for m in debug)


# --- Connect API calls -------------------------------------------------------------------------


def test_find_connection_links_when_discovery_is_empty(heroku, hc):
    heroku.script(
        Reply(200, {"count": 0, "next": None, "results": []}),
        Reply(200, {"user": {"id": "u1"}, "connections": []}),
        Reply(200, {"count": 1, "results": [discovery_entry(heroku, "abc", "herokuconnect-x")]}),
    )
    ref = hc.find_connection("my-app", "herokuconnect-x")
    assert ref.id == "abc"
    assert [(s.method, s.path) for s in heroku.seen] == [
        ("GET", "/hc-central/connections"),
        ("POST", "/hc-central/auth/my-app"),
        ("GET", "/hc-central/connections"),
    ]


def test_find_connection_not_found_after_link(heroku, hc):
    heroku.script(
        Reply(200, {"results": []}), Reply(200, {"connections": []}), Reply(200, {"results": []})
    )
    with pytest.raises(ConnectionNotFound) as exc:
        hc.find_connection("my-app", "herokuconnect-x")
    assert "heroku addons:open herokuconnect -a my-app" in str(exc.value)
    assert len(heroku.seen) == 3


def test_find_connection_refuses_several_matches(heroku, hc):
    entries = [
        discovery_entry(heroku, "c1", "herokuconnect-one"),
        discovery_entry(heroku, "c2", "herokuconnect-two"),
    ]
    heroku.script(Reply(200, {"count": 2, "results": entries}))
    with pytest.raises(MultipleConnections) as exc:
        hc.find_connection("my-app")
    assert exc.value.resource_names == ["herokuconnect-one", "herokuconnect-two"]
    assert "herokuconnect-one, herokuconnect-two" in str(exc.value)
    assert len(heroku.seen) == 1


def test_discover_follows_next(heroku, hc):
    second = f"{heroku.url}/hc-central/connections?app=my-app&page=2"
    heroku.script(
        Reply(200, {"count": 2, "next": second, "results": [discovery_entry(heroku, "c1", "a")]}),
        Reply(200, {"count": 2, "next": None, "results": [discovery_entry(heroku, "c2", "b")]}),
    )
    assert [r.id for r in hc.discover("my-app")] == ["c1", "c2"]
    assert heroku.seen[1].target == "/hc-central/connections?app=my-app&page=2"


def test_export_import_round_trip_keeps_unknown_fields(heroku, hc):
    heroku.script(Reply(200, EXPORT), Reply(202))
    ref = ref_for(heroku)
    doc = hc.export_config(ref)
    assert doc.future_top_level == {"kept": True}
    assert doc.mappings[0].future_mapping_field == 42
    assert doc.mappings[0].config.future_config_field == "x"
    assert doc.model_dump()["mappings"][0]["config"]["future_config_field"] == "x"
    hc.import_config(ref, doc)
    sent = heroku.seen[1]
    assert (sent.method, sent.path) == ("POST", "/cell-1/api/v3/connections/abc/actions/import")
    assert sent.json() == EXPORT


def test_import_of_a_filtered_document_with_added_fields(heroku, hc):
    heroku.script(Reply(202))
    doc = ExportDocument.model_validate(EXPORT)
    hc.import_config(
        ref_for(heroku),
        doc.filtered(["contact"], keep_connection=False).with_added_fields(
            {"Contact": ["Email", "Preferred_Channel__c"]}
        ),
    )
    body = heroku.seen[0].json()
    assert "connection" not in body
    assert body["version"] == 1 and body["future_top_level"] == {"kept": True}
    assert [m["object_name"] for m in body["mappings"]] == ["Contact"]
    config = body["mappings"][0]["config"]
    assert list(config["fields"]) == [
        "Id",
        "LastName",
        "External_Key__c",
        "Email",
        "Preferred_Channel__c",
    ]
    assert config["future_config_field"] == "x"
    assert config["upsert_field"] == "External_Key__c"


def test_configure_and_authorize_url_bodies(heroku, hc):
    heroku.script(
        Reply(200, {"id": "abc", "state": "NEED_AUTHENTICATION", "schema_name": "schema2"}),
        Reply(201, {"redirect": "https://login.example.com/authorize?x=1"}),
    )
    ref = ref_for(heroku)
    conn = hc.configure(ref, db_key="DATABASE_URL", schema_name="schema2")
    url = hc.authorize_url(
        ref, environment="custom", domain="acme.my.salesforce.com", next_url="https://next"
    )
    assert conn.state == "NEED_AUTHENTICATION"
    assert url == "https://login.example.com/authorize?x=1"
    configure, authorize = heroku.seen
    assert (configure.method, configure.path) == ("PATCH", "/cell-1/api/v3/connections/abc")
    assert configure.json() == {"db_key": "DATABASE_URL", "schema_name": "schema2"}
    assert authorize.path == "/cell-1/api/v3/connections/abc/authorize_url"
    assert authorize.json() == {
        "environment": "custom",
        "domain": "acme.my.salesforce.com",
        "next": "https://next",
    }


@pytest.mark.parametrize(
    ("environment", "domain"),
    [("custom", None), ("production", "acme.my.salesforce.com"), ("staging", None)],
)
def test_authorize_url_is_validated_before_sending(heroku, hc, environment, domain):
    with pytest.raises(ValueError):
        hc.authorize_url(
            ref_for(heroku), environment=environment, domain=domain, next_url="https://next"
        )
    assert heroku.seen == []


def test_mapping_calls(heroku, hc):
    mapping = {
        "id": "m1",
        "object_name": "Contact",
        "state": "DATA_SYNCED",
        "config": {"access": "read_write", "fields": {"Id": {}}, "revision": 3},
        "counts": {"count": 10, "sf": 11, "pending": 0, "errors": 0},
    }
    heroku.script(
        Reply(200, mapping),
        Reply(201, mapping),
        Reply(200, {}),
        Reply(204),
        Reply(202),
        Reply(200, {"count": 1, "results": [{"id": 7, "table_name": "contact", "record_id": 3}]}),
        Reply(200, {"db_keys": [{"name": "DATABASE_URL", "addon": {"plan": "essential-0"}}]}),
    )
    ref = ref_for(heroku)
    got = hc.get_mapping(ref, "m1")
    assert got.counts.db == 10
    config = got.config.model_copy(update={"fields": {"Id": {}, "Email": {}}})
    created = hc.create_mapping(ref, "Contact", {"access": "read_only", "fields": {"Id": {}}})
    assert created is not None and created.id == "m1"
    assert hc.update_mapping(ref, "m1", "Contact", config) is None
    hc.delete_mapping(ref, "m1")
    hc.reload_mapping(ref, "m1")
    errors = hc.mapping_errors(ref, "m1")
    assert (errors.count, errors.results[0].id) == (1, "7")
    assert hc.app_db_keys(ref, "my-app") == ["DATABASE_URL"]
    assert [(s.method, s.path) for s in heroku.seen] == [
        ("GET", "/cell-1/api/v3/mappings/m1"),
        ("POST", "/cell-1/api/v3/connections/abc/mappings"),
        ("PUT", "/cell-1/api/v3/mappings/m1"),
        ("DELETE", "/cell-1/api/v3/mappings/m1"),
        ("POST", "/cell-1/api/v3/mappings/m1/actions/reload"),
        ("GET", "/cell-1/api/v3/mappings/m1/errors"),
        ("GET", "/cell-1/api/v3/apps/my-app"),
    ]
    assert heroku.seen[1].json() == {
        "object_name": "Contact",
        "config": {"access": "read_only", "fields": {"Id": {}}},
    }
    assert heroku.seen[2].json() == {
        "object_name": "Contact",
        "config": {"access": "read_write", "fields": {"Id": {}, "Email": {}}, "revision": 3},
    }


def test_update_mapping_requires_the_current_revision(heroku, hc):
    with pytest.raises(ValueError, match="revision"):
        hc.update_mapping(ref_for(heroku), "m1", "Contact", {"fields": {"Id": {}}})
    assert heroku.seen == []


# --- Platform API calls ------------------------------------------------------------------------


def test_list_addons_follows_next_range(heroku, platform):
    addon = {
        "id": "a1",
        "name": "herokuconnect-x",
        "state": "provisioned",
        "addon_service": {"id": "s1", "name": "herokuconnect"},
        "plan": {"id": "p1", "name": "herokuconnect:demo"},
        "app": {"id": "app-uuid", "name": "my-app"},
    }
    heroku.script(
        Reply(206, [addon], {"Next-Range": "]a1..; max=1"}),
        Reply(200, [{**addon, "id": "a2", "name": "postgresql-y"}]),
    )
    addons = platform.list_addons("my-app")
    assert [a.name for a in addons] == ["herokuconnect-x", "postgresql-y"]
    assert addons[0].plan_name == "herokuconnect:demo"
    assert "range" not in heroku.seen[0].headers
    assert heroku.seen[1].headers["range"] == "]a1..; max=1"
    assert [s.path for s in heroku.seen] == ["/platform/apps/my-app/addons"] * 2


def test_create_addon_body(heroku, platform):
    heroku.script(Reply(201, {"id": "a9", "name": "herokuconnect-new", "state": "provisioning"}))
    addon = platform.create_addon(
        "my-app",
        plan="herokuconnect:enterprise",
        name="herokuconnect-new",
        attachment_name="HC2",
        confirm="my-app",
    )
    assert addon.state == "provisioning"
    sent = heroku.seen[0]
    assert (sent.method, sent.path) == ("POST", "/platform/apps/my-app/addons")
    assert sent.json() == {
        "plan": "herokuconnect:enterprise",
        "name": "herokuconnect-new",
        "attachment": {"name": "HC2"},
        "confirm": "my-app",
    }


def test_maintenance_formation_and_dynos(heroku, platform):
    formation = [
        {"id": "f1", "type": "web", "quantity": 2, "size": "Standard-1X"},
        {"id": "f2", "type": "worker", "quantity": 0, "dyno_size": {"name": "Standard-2X"}},
    ]
    heroku.script(
        Reply(200, {"id": "app-uuid", "name": "my-app", "maintenance": True}),
        Reply(200, formation),
        Reply(200, [{"id": "d1", "name": "web.1", "type": "web", "state": "up"}]),
    )
    assert platform.set_maintenance("my-app", True).maintenance is True
    updated = platform.update_formation(
        "my-app",
        [FormationUpdate(type="web", quantity=0), {"type": "worker", "dyno_size": "Standard-2X"}],
    )
    dynos = platform.dynos("my-app")
    assert [f.dyno_size_name for f in updated] == ["Standard-1X", "Standard-2X"]
    assert dynos[0].state == "up"
    maintenance, scale, listing = heroku.seen
    assert (maintenance.method, maintenance.path, maintenance.json()) == (
        "PATCH",
        "/platform/apps/my-app",
        {"maintenance": True},
    )
    assert (scale.method, scale.path) == ("PATCH", "/platform/apps/my-app/formation")
    assert scale.json() == {
        "updates": [
            {"type": "web", "quantity": 0},
            {"type": "worker", "dyno_size": {"name": "Standard-2X"}},
        ]
    }
    assert (listing.method, listing.path) == ("GET", "/platform/apps/my-app/dynos")


def test_config_vars_are_secrets(heroku, platform):
    heroku.script(Reply(200, {"DATABASE_URL": "postgres://u:pw@host/db", "EMPTY": None}))
    values = platform.config_vars("my-app")
    assert set(values) == {"DATABASE_URL"}
    assert isinstance(values["DATABASE_URL"], SecretStr)
    assert values["DATABASE_URL"].get_secret_value() == "postgres://u:pw@host/db"
    assert "pw" not in str(values)
    assert heroku.seen[0].path == "/platform/apps/my-app/config-vars"
