"""A local stand-in for the ACLED and UCDP APIs (standard library http.server, 127.0.0.1).

It implements the protocol the clients in convoyrisk.fetch speak (OAuth password and
refresh grants, ACLED's paged /api/acled/read and /api/deleted/read, UCDP's paged
/api/gedevents/{version}) with switches for what goes wrong: tokens that expire
mid-run, HTTP 429 with Retry-After, 5xx, refused credentials and permissions.
Events are synthetic rows with the real exports' columns.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .exports import ACLED_HEADER, GED_HEADER

USER = "analyst@example.org"
PASSWORD = "correct horse battery staple"
UCDP_TOKEN = "ucdp-token-1234"


def acled_event(k: int, *, date: str = "2023-11-04", stamp: int = 1_700_000_000) -> dict[str, str]:
    row = dict.fromkeys(ACLED_HEADER, "")
    row |= {
        "event_id_cnty": f"MLI{k}",
        "event_date": date,
        "year": date[:4],
        "time_precision": "1",
        "event_type": "Explosions/Remote violence",
        "sub_event_type": "Remote explosive/landmine/IED",
        "country": "Mali",
        "latitude": f"{17.0 + k / 100:.4f}",
        "longitude": f"{0.5 + k / 100:.4f}",
        "geo_precision": "1",
        "source": "Synthetic",
        "fatalities": str(k % 3),
        "timestamp": str(stamp),
    }
    return row


def ged_event(k: int, *, date: str = "2023-11-04") -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(GED_HEADER, "")
    row |= {
        "id": 900_000 + k,
        "year": int(date[:4]),
        "type_of_violence": 1,
        "country": "Mali",
        "country_id": 432,
        "latitude": 17.0 + k / 100,
        "longitude": 0.5 + k / 100,
        "where_prec": 1,
        "date_start": f"{date} 00:00:00.000",
        "date_end": f"{date} 00:00:00.000",
        "best": k % 4,
        "low": 0,
        "high": k % 4 + 1,
    }
    return row


@dataclass
class FakeApi:
    """State and switches of the fake server."""

    acled: list[dict[str, str]] = field(default_factory=list)
    deleted: list[dict[str, str]] = field(default_factory=list)
    ged: list[dict[str, Any]] = field(default_factory=list)
    expires_in: int = 3600
    token_uses: int | None = None  # an access token is refused after this many reads
    refuse_refresh: bool = False
    throttle: dict[int, str | None] = field(default_factory=dict)  # read number -> Retry-After
    fail_5xx: set[int] = field(default_factory=set)  # read numbers answered with 503
    drop: set[int] = field(default_factory=set)  # read numbers whose connection is dropped
    forbid_read: bool = False
    requests: list[tuple[str, str, dict[str, str], str]] = field(default_factory=list)
    grants: list[str] = field(default_factory=list)
    reads: int = 0
    _tokens: dict[str, int] = field(default_factory=dict)
    _refresh: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def token(self) -> dict[str, Any]:
        n = len(self.grants)
        access, refresh = f"access-{n}", f"refresh-{n}"
        self._tokens[access] = 0
        self._refresh.add(refresh)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": self.expires_in,
            "token_type": "Bearer",
        }


def _page(rows: list[Any], query: dict[str, str], size_key: str, first: int) -> list[Any]:
    size = int(query.get(size_key, "100"))
    page = int(query.get("page", str(first))) - first
    return rows[page * size : (page + 1) * size]


class _Handler(BaseHTTPRequestHandler):
    api: FakeApi

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        api = self.api
        length = int(self.headers.get("Content-Length", "0"))
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        with api._lock:
            api.requests.append(("POST", self.path, dict(self.headers), json.dumps(form)))
            if self.path != "/oauth/token" or form.get("client_id") != "acled":
                self._send(400, {"error": "invalid_request"})
                return
            grant = form.get("grant_type", "")
            if grant == "password":
                if form.get("username") != USER or form.get("password") != PASSWORD:
                    self._send(401, {"error": "invalid_grant"})
                    return
            elif grant == "refresh_token":
                if api.refuse_refresh or form.get("refresh_token") not in api._refresh:
                    self._send(400, {"error": "invalid_grant"})
                    return
            else:
                self._send(400, {"error": "unsupported_grant_type"})
                return
            api.grants.append(grant)
            self._send(200, api.token())

    def do_GET(self) -> None:
        api = self.api
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        with api._lock:
            api.requests.append(("GET", self.path, dict(self.headers), ""))
            if url.path.startswith("/api/gedevents/"):
                self._ucdp(query)
                return
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            uses = api._tokens.get(token)
            if uses is None or (api.token_uses is not None and uses >= api.token_uses):
                self._send(401, {"error": "invalid_token"})
                return
            api._tokens[token] = uses + 1
            api.reads += 1
            if api.reads in api.throttle:
                wait = api.throttle.pop(api.reads)
                self._send(429, {"error": "slow down"}, {"Retry-After": wait} if wait else {})
                return
            if api.reads in api.drop:
                api.drop.discard(api.reads)
                self.close_connection = True  # no answer at all: the client sees a reset
                return
            if api.reads in api.fail_5xx:
                api.fail_5xx.discard(api.reads)
                self._send(503, {"error": "unavailable"})
                return
            if api.forbid_read:
                self._send(403, {"error": "access denied"})
                return
            if url.path == "/api/acled/read":
                self._acled(query)
            elif url.path == "/api/deleted/read":
                stamp = int(query.get("deleted_timestamp", "0"))
                rows = [d for d in api.deleted if int(d["deleted_timestamp"]) >= stamp]
                self._send(200, {"success": True, "data": _page(rows, query, "limit", 1)})
            else:
                self._send(404, {"error": "not found"})

    def _acled(self, query: dict[str, str]) -> None:
        first, last = query["event_date"].split("|")
        assert query["event_date_where"] == "BETWEEN"
        assert int(query["limit"]) <= 5000
        stamp = int(query.get("timestamp", "0"))
        rows = [
            r
            for r in self.api.acled
            if r["country"] == query["country"]
            and first <= r["event_date"] <= last
            and int(r["timestamp"]) >= stamp
        ]
        data = _page(rows, query, "limit", 1)
        self._send(200, {"status": 200, "success": True, "count": len(data), "data": data})

    def _ucdp(self, query: dict[str, str]) -> None:
        if self.headers.get("x-ucdp-access-token") != UCDP_TOKEN:
            self._send(401, {"error": "bad token"})
            return
        rows = [
            r
            for r in self.api.ged
            if str(r["country_id"]) == query["Country"]
            and query["StartDate"] <= r["date_start"][:10] <= query["EndDate"]
        ]
        size = int(query["pagesize"])
        pages = (len(rows) + size - 1) // size
        data = _page(rows, query, "pagesize", 0)
        self._send(200, {"TotalCount": len(rows), "TotalPages": pages, "Result": data})


@contextmanager
def serve(api: FakeApi, *, lifetime_s: float = 120.0) -> Iterator[str]:
    """Run the fake API on 127.0.0.1 in a thread; yield its root URL; stop it after.

    A timer stops it after `lifetime_s` even if the test hangs.
    """
    handler = type("Handler", (_Handler,), {"api": api})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    guard = threading.Timer(lifetime_s, server.shutdown)
    guard.daemon = True
    guard.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        guard.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
