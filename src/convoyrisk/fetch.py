"""Incidents from the ACLED and UCDP APIs, written as CSV files that read like their exports.

ACLED (API as documented in 2025–2026)
    OAuth password grant: ``POST {api}/oauth/token`` with form fields
    ``username``, ``password``, ``grant_type=password``, ``client_id=acled``
    gives ``access_token``, ``refresh_token`` and ``expires_in`` (seconds).
    Events: ``GET {api}/api/acled/read?_format=json`` with ``Authorization:
    Bearer <token>``, ``country``, ``event_date=A|B`` and
    ``event_date_where=BETWEEN``, ``limit`` (at most 5 000) and ``page`` (from
    1); the body's ``data`` is a list of events (values as strings), and a page
    shorter than ``limit`` is the last. Deletions: ``GET
    {api}/api/deleted/read?_format=json`` with ``deleted_timestamp`` and
    ``deleted_timestamp_where``, giving ``event_id_cnty`` and
    ``deleted_timestamp``. Credentials come from the ``ACLED_USERNAME`` and
    ``ACLED_PASSWORD`` environment variables only, and are never printed.
UCDP GED
    ``GET {api}/api/gedevents/{version}?pagesize=…&page=…`` (pages from 0)
    with ``Country`` (a Gleditsch–Ward code: Mali is 432), ``StartDate``,
    ``EndDate`` and the header ``x-ucdp-access-token`` from ``UCDP_TOKEN``; the
    body has ``Result``, ``TotalPages`` and ``TotalCount``.

Both clients refresh an expired token (or log in again) and go on; retry HTTP
429 and 5xx with exponential backoff, honouring ``Retry-After`` (bounded);
turn 401/403 into one line naming the credential or permission at fault, and
no network into one line (:class:`convoyrisk._errors.FetchError`). A finished
query is kept in a local cache (:func:`cache_dir`), so the same query does
not download again. Files are written atomically, once every page is in.

ACLED's terms of use forbid redistributing its rows: a fetched file is the
user's own, not to be shared or committed.
"""

from __future__ import annotations

import csv
import datetime as dt
import email.utils
import hashlib
import http.client
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import FetchError, InputError
from .settings import cache_dir
from .utils import atomic_path, write_text_atomic

ACLED_API = "https://acleddata.com"
"""ACLED's API root (``/oauth/token``, ``/api/acled/read``, ``/api/deleted/read``)."""

UCDP_API = "https://ucdpapi.pcr.uu.se"
"""UCDP's API root (``/api/gedevents/{version}``)."""

UCDP_VERSION = "25.1"
"""GED release asked for by default (``--ged-version``: e.g. a monthly candidate "25.0.9")."""

ACLED_PAGE = 5_000
"""ACLED's largest page (``limit``)."""

UCDP_PAGE = 1_000
"""UCDP's largest page (``pagesize``)."""

GW_CODES: dict[str, int] = {
    "algeria": 615,
    "afghanistan": 700,
    "benin": 434,
    "burkina faso": 439,
    "burundi": 516,
    "cameroon": 471,
    "central african republic": 482,
    "chad": 483,
    "colombia": 100,
    "cote d'ivoire": 437,
    "côte d'ivoire": 437,
    "ivory coast": 437,
    "democratic republic of congo": 490,
    "dr congo": 490,
    "drc": 490,
    "egypt": 651,
    "ethiopia": 530,
    "ghana": 452,
    "guinea": 438,
    "haiti": 41,
    "india": 750,
    "iraq": 645,
    "israel": 666,
    "kenya": 501,
    "lebanon": 660,
    "libya": 620,
    "mali": 432,
    "mauritania": 435,
    "mexico": 70,
    "mozambique": 541,
    "myanmar": 775,
    "niger": 436,
    "nigeria": 475,
    "pakistan": 770,
    "philippines": 840,
    "russia": 365,
    "senegal": 433,
    "somalia": 520,
    "south sudan": 626,
    "sudan": 625,
    "syria": 652,
    "togo": 461,
    "uganda": 500,
    "ukraine": 369,
    "yemen": 678,
}
"""Gleditsch–Ward codes UCDP uses for ``Country``, for common names; any other country is
given by its code (``--country 432``)."""

PageProgress = Callable[[int, int, int | None], None]
"""Called after each page as ``progress(page, events_so_far, total_pages_or_None)``."""


@dataclass
class Fetched:
    """What a query brought back.

    Attributes
    ----------
    rows
        Events, each the source's own fields (values as text).
    deleted
        Event ids the source deleted (ACLED ``--update`` only).
    pages
        Pages downloaded (0 when the cache answered).
    from_cache
        True if the local cache answered.
    """

    rows: list[dict[str, str]]
    deleted: list[str] = field(default_factory=list)
    pages: int = 0
    from_cache: bool = False


@dataclass
class Http:
    """A small JSON client over urllib: retries 429 and 5xx, bounded, honouring Retry-After.

    Attributes
    ----------
    retries
        Tries after the first for a 429 or 5xx answer (or a dropped connection).
    backoff_s
        First wait, seconds; doubled after each retry.
    max_wait_s
        Longest single wait, seconds (a larger ``Retry-After`` is cut to this).
    timeout_s
        Socket timeout per request, seconds.
    sleep
        The function that waits (tests pass one that records).
    """

    retries: int = 5
    backoff_s: float = 1.0
    max_wait_s: float = 60.0
    timeout_s: float = 60.0
    sleep: Callable[[float], None] = time.sleep

    def call(
        self,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:  # noqa: ANN401 - parsed JSON
        """GET (or POST `form`) `url` and return the parsed JSON body.

        Raises
        ------
        urllib.error.HTTPError
            For a 4xx answer other than 429 (the caller says what it means).
        FetchError
            If the server cannot be reached, keeps failing, or answers non-JSON.
        """
        if params:
            url = f"{url}?{urllib.parse.urlencode(params, safe='|')}"
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        host = urllib.parse.urlsplit(url).netloc
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(  # noqa: S310 - http(s) URLs the user gave
                url, data=data, headers={"Accept": "application/json", **(headers or {})}
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:  # noqa: S310
                    body = answer.read()
            except urllib.error.HTTPError as exc:
                exc.close()  # its body is not needed: the status says it all
                if exc.code != 429 and exc.code < 500:
                    raise
                if attempt == self.retries:
                    msg = (
                        f"{host} still answered HTTP {exc.code} after {self.retries + 1} tries: "
                        "the service is busy or down, try again later."
                    )
                    raise FetchError(msg) from exc
                self.sleep(self._wait(exc.headers.get("Retry-After"), attempt))
                continue
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = getattr(exc, "reason", exc)
                if attempt == self.retries or not _transient(reason):
                    msg = (
                        f"Cannot reach {host} ({reason}): check the network connection "
                        "or `--api-url`."
                    )
                    raise FetchError(msg) from exc
                self.sleep(self._wait(None, attempt))
                continue
            try:
                return json.loads(body)
            except ValueError as exc:
                msg = f"{host} answered something that is not JSON: check `--api-url` ({url})."
                raise FetchError(msg) from exc
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def _wait(self, retry_after: str | None, attempt: int) -> float:
        """Seconds to wait: the server's Retry-After if it gave one, else the backoff."""
        wait = self.backoff_s * 2**attempt
        if retry_after:
            try:
                wait = float(retry_after)
            except ValueError:
                when = email.utils.parsedate_to_datetime(retry_after)
                wait = (when - dt.datetime.now(tz=dt.UTC)).total_seconds()
        return float(min(max(wait, 0.0), self.max_wait_s))


def _transient(reason: object) -> bool:
    """A dropped or reset connection is worth retrying; refused, unknown host, no route are not."""
    return isinstance(
        reason,
        (TimeoutError, ConnectionResetError, ConnectionAbortedError, http.client.HTTPException),
    )


def _day(value: str | dt.date | None, name: str) -> str:
    """A date as YYYY-MM-DD (today if None), or an InputError naming the option."""
    if value is None:
        return dt.datetime.now(tz=dt.UTC).date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(str(value).strip()).isoformat()
    except ValueError as exc:
        msg = f"`--{name}` {value!r} is not a date: give it as YYYY-MM-DD."
        raise InputError(msg) from exc


def _env(name: str, what: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        msg = f"{name} is not set: export {name} ({what}) in the environment and try again."
        raise FetchError(msg)
    return value


class _Cache:
    """Finished queries as JSON files named by a hash of the query."""

    def __init__(self, folder: Path | None, key: Mapping[str, Any]) -> None:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        self.path = None if folder is None else folder / "fetch" / f"{key['source']}-{digest}.json"

    def load(self) -> Fetched | None:
        if self.path is None or not self.path.exists():
            return None
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
            return Fetched(rows=saved["rows"], deleted=saved["deleted"], from_cache=True)
        except (ValueError, KeyError, OSError):
            return None  # a damaged cache entry is fetched again

    def save(self, result: Fetched) -> None:
        if self.path is not None:
            text = json.dumps({"rows": result.rows, "deleted": result.deleted})
            write_text_atomic(self.path, text)


def _text(value: object) -> str:
    return "" if value is None else str(value)


class _AcledSession:
    """An ACLED login: the access token, refreshed before it expires or when refused."""

    def __init__(self, api: str, http: Http) -> None:
        self.api = api
        self.http = http
        self.token = ""
        self.refresh_token = ""
        self.expires = 0.0

    def _grant(self, form: dict[str, str]) -> None:
        try:
            body = self.http.call(f"{self.api}/oauth/token", form=form)
        except urllib.error.HTTPError as exc:
            if form["grant_type"] == "refresh_token":
                raise
            msg = (
                f"ACLED refused the login (HTTP {exc.code}): check ACLED_USERNAME and "
                "ACLED_PASSWORD (your ACLED account's email and password)."
            )
            raise FetchError(msg) from exc
        if not isinstance(body, dict) or not body.get("access_token"):
            msg = f"ACLED's token endpoint {self.api}/oauth/token gave no access_token."
            raise FetchError(msg)
        self.token = str(body["access_token"])
        self.refresh_token = str(body.get("refresh_token") or "")
        life = body.get("expires_in")
        self.expires = time.monotonic() + (3600.0 if life is None else float(life)) - 30.0

    def login(self) -> None:
        self._grant(
            {
                "username": _env("ACLED_USERNAME", "your ACLED account's email"),
                "password": _env("ACLED_PASSWORD", "your ACLED account's password"),
                "grant_type": "password",
                "client_id": "acled",
            }
        )

    def refresh(self) -> None:
        """A new access token from the refresh token, or a new login if that is refused."""
        if self.refresh_token:
            form = {
                "refresh_token": self.refresh_token,
                "grant_type": "refresh_token",
                "client_id": "acled",
            }
            try:
                self._grant(form)
            except urllib.error.HTTPError:
                pass
            else:
                return
        self.login()

    def get(self, path: str, params: Mapping[str, str | int]) -> Any:  # noqa: ANN401 - JSON
        """GET an API path with the token; refresh it once if it expired or was refused."""
        if not self.token:
            self.login()
        elif time.monotonic() >= self.expires:
            self.refresh()
        for attempt in range(2):
            try:
                return self.http.call(
                    f"{self.api}{path}",
                    params=params,
                    headers={"Authorization": f"Bearer {self.token}"},
                )
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and attempt == 0:
                    self.refresh()  # the token expired on the server's clock
                    continue
                if exc.code in {401, 403}:
                    msg = (
                        f"ACLED refused {path} (HTTP {exc.code}): the account in ACLED_USERNAME "
                        "lacks API access to this data; check its access level on ACLED's site."
                    )
                    raise FetchError(msg) from exc
                msg = f"ACLED answered HTTP {exc.code} to {path}: check the query options."
                raise FetchError(msg) from exc
        raise AssertionError  # pragma: no cover


def _acled_pages(
    session: _AcledSession,
    path: str,
    *,
    params: Mapping[str, str | int],
    page_size: int,
    progress: PageProgress | None,
    counter: list[int],
) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    page = 1
    while True:
        body = session.get(path, {**params, "limit": page_size, "page": page})
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            detail = body.get("error") if isinstance(body, dict) else None
            msg = f"ACLED's {path} gave no `data` list ({detail or 'unexpected answer'})."
            raise FetchError(msg)
        rows.extend({str(k): _text(v) for k, v in event.items()} for event in data)
        counter[0] += 1
        if progress is not None:
            progress(page, len(rows), None)
        if len(data) < page_size:
            return rows
        page += 1


def fetch_acled(
    country: str,
    since: str | dt.date,
    until: str | dt.date | None = None,
    *,
    api_url: str = ACLED_API,
    updated_since: int | None = None,
    page_size: int = ACLED_PAGE,
    cache: bool = True,
    http: Http | None = None,
    progress: PageProgress | None = None,
) -> Fetched:
    """ACLED events of `country` dated `since` to `until` (inclusive), all pages.

    Parameters
    ----------
    country
        ACLED's country name, e.g. "Mali".
    since, until
        First and last event dates (``until`` None: today).
    api_url
        The API root (a mirror, or a local test server).
    updated_since
        Only events added or changed at or after this Unix time (ACLED's
        ``timestamp``), and the deletions since then.
    page_size
        Events per page (``limit``, at most 5 000).
    cache
        Look up and keep the finished query in :func:`cache_dir`.
    http
        The HTTP client (retries, waits).
    progress
        Called after each page.

    Raises
    ------
    FetchError
        For a missing or refused credential, no network, or a failing server.
    """
    first, last = _day(since, "since"), _day(until, "until")
    api = api_url.rstrip("/")
    params: dict[str, str | int] = {
        "_format": "json",
        "country": country,
        "event_date": f"{first}|{last}",
        "event_date_where": "BETWEEN",
    }
    if updated_since is not None:
        params |= {"timestamp": updated_since, "timestamp_where": ">="}
    store = _Cache(
        cache_dir() if cache else None,
        {"source": "acled", "api": api, "params": params, "page": page_size},
    )
    if (hit := store.load()) is not None:
        return hit
    session = _AcledSession(api, http or Http())
    counter = [0]
    size = min(page_size, ACLED_PAGE)
    rows = _acled_pages(
        session,
        "/api/acled/read",
        params=params,
        page_size=size,
        progress=progress,
        counter=counter,
    )
    deleted: list[str] = []
    if updated_since is not None:
        gone = _acled_pages(
            session,
            "/api/deleted/read",
            params={
                "_format": "json",
                "deleted_timestamp": updated_since,
                "deleted_timestamp_where": ">=",
            },
            page_size=size,
            progress=None,
            counter=counter,
        )
        deleted = [r.get("event_id_cnty", "") for r in gone if r.get("event_id_cnty")]
    result = Fetched(rows=rows, deleted=deleted, pages=counter[0])
    store.save(result)
    return result


def gw_code(country: str) -> int:
    """The Gleditsch–Ward code of a country name (or of a code given as text).

    Examples
    --------
    >>> gw_code("Mali"), gw_code("432")
    (432, 432)
    """
    text = country.strip()
    if text.isdigit():
        return int(text)
    code = GW_CODES.get(text.lower())
    if code is None:
        msg = (
            f"`--country {country}`: no Gleditsch–Ward code known for it; give the code "
            "(UCDP's country id, e.g. `--country 432` for Mali)."
        )
        raise InputError(msg)
    return code


def fetch_ucdp(
    country: str,
    since: str | dt.date,
    until: str | dt.date | None = None,
    *,
    api_url: str = UCDP_API,
    version: str = UCDP_VERSION,
    page_size: int = UCDP_PAGE,
    cache: bool = True,
    http: Http | None = None,
    progress: PageProgress | None = None,
) -> Fetched:
    """UCDP GED events of `country` from `since` to `until` (inclusive), all pages.

    Parameters
    ----------
    country
        A country name in :data:`GW_CODES` or a Gleditsch–Ward code ("432").
    since, until
        ``StartDate`` and ``EndDate`` (``until`` None: today).
    api_url
        The API root (a mirror, or a local test server).
    version
        The GED release (``/api/gedevents/{version}``).
    page_size
        Events per page (``pagesize``, at most 1 000).
    cache
        Look up and keep the finished query in :func:`cache_dir`.
    http
        The HTTP client (retries, waits).
    progress
        Called after each page.

    Raises
    ------
    FetchError
        For a missing or refused token, no network, or a failing server.
    """
    params: dict[str, str | int] = {
        "Country": gw_code(country),
        "StartDate": _day(since, "since"),
        "EndDate": _day(until, "until"),
    }
    api = api_url.rstrip("/")
    path = f"/api/gedevents/{urllib.parse.quote(version)}"
    store = _Cache(
        cache_dir() if cache else None,
        {"source": "ucdp", "api": api, "path": path, "params": params, "page": page_size},
    )
    if (hit := store.load()) is not None:
        return hit
    token = _env("UCDP_TOKEN", "the access token UCDP gave you for its API")
    http = http or Http()
    rows: list[dict[str, str]] = []
    page = 0
    while True:
        try:
            body = http.call(
                f"{api}{path}",
                params={"pagesize": min(page_size, UCDP_PAGE), "page": page, **params},
                headers={"x-ucdp-access-token": token},
            )
        except urllib.error.HTTPError as exc:
            if exc.code in {401, 403}:
                msg = (
                    f"UCDP refused the token in UCDP_TOKEN (HTTP {exc.code}): check it, or ask "
                    "UCDP for an API token."
                )
                raise FetchError(msg) from exc
            msg = f"UCDP answered HTTP {exc.code} to {path}: check `--ged-version` and the dates."
            raise FetchError(msg) from exc
        result = body.get("Result") if isinstance(body, dict) else None
        if not isinstance(result, list):
            msg = f"UCDP's {path} gave no `Result` list: check `--api-url` and `--ged-version`."
            raise FetchError(msg)
        rows.extend({str(k): _text(v) for k, v in event.items()} for event in result)
        total = int(body.get("TotalPages") or 0)
        if progress is not None:
            progress(page + 1, len(rows), total)
        page += 1
        if page >= total or not result:
            break
    fetched = Fetched(rows=rows, pages=page)
    store.save(fetched)
    return fetched


def _columns(rows: list[dict[str, str]], first: list[str] | None = None) -> list[str]:
    """Every field, in the order the source gives them (a file's own header first)."""
    names = dict.fromkeys(first or [])
    for row in rows:
        names.update(dict.fromkeys(row))
    return list(names)


def read_csv_rows(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """A fetched file's header and rows (as text), for ``--update``.

    Raises
    ------
    InputError
        If it is not a CSV with a header.
    """
    try:
        with Path(path).open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        msg = f"Cannot read {path} for `--update` ({exc}): fetch it again without `--update`."
        raise InputError(msg) from exc
    if not header:
        msg = f"{path} has no header: fetch it again without `--update`."
        raise InputError(msg)
    return header, rows


def write_csv_rows(path: str | Path, rows: list[dict[str, str]], header: list[str]) -> Path:
    """Write events as CSV with the source's own columns, atomically."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


def apply_update(
    old: list[dict[str, str]],
    new: list[dict[str, str]],
    *,
    key: str,
    deleted: Sequence[str] = (),
) -> tuple[list[dict[str, str]], int, int, int]:
    """Rows of a file after an update: changed rows replaced, new added, deleted dropped.

    Parameters
    ----------
    old, new
        The file's rows and the fetched ones.
    key
        The event id field (``event_id_cnty`` for ACLED, ``id`` for GED).
    deleted
        Ids the source deleted.

    Returns
    -------
    tuple
        The rows, and how many were added, changed and deleted.

    Examples
    --------
    >>> old = [{"id": "1", "v": "a"}, {"id": "2", "v": "b"}]
    >>> rows, *n = apply_update(old, [{"id": "2", "v": "B"}, {"id": "3", "v": "c"}], key="id",
    ...                         deleted=["1"])
    >>> [r["v"] for r in rows], n
    (['B', 'c'], [1, 1, 1])
    """
    by_id = {r.get(key) or f"\0old{k}": r for k, r in enumerate(old)}  # a row without id stays
    fresh = {r.get(key) or f"\0new{k}": r for k, r in enumerate(new)}
    added = sum(1 for k in fresh if k not in by_id)
    changed = len(fresh) - added
    by_id.update(fresh)
    gone = {d for d in deleted if d in by_id}
    rows = [r for k, r in by_id.items() if k not in gone]
    return rows, added, changed, len(gone)


@dataclass
class FetchSummary:
    """What :func:`fetch_to_file` did.

    Attributes
    ----------
    path
        The file written.
    events
        Events in the file.
    pages
        Pages downloaded (0 when the cache answered).
    from_cache
        True if the local cache answered.
    added, changed, deleted
        For ``update``: events added, replaced and removed.
    """

    path: Path
    events: int
    pages: int
    from_cache: bool
    added: int = 0
    changed: int = 0
    deleted: int = 0


def fetch_to_file(
    source: str,
    *,
    country: str,
    since: str | dt.date,
    until: str | dt.date | None = None,
    out: str | Path,
    update: bool = False,
    api_url: str | None = None,
    version: str = UCDP_VERSION,
    cache: bool = True,
    http: Http | None = None,
    progress: PageProgress | None = None,
) -> FetchSummary:
    """Fetch ACLED or UCDP events into a CSV with the source's own columns (atomically).

    With `update` and an existing `out`: ACLED fetches only events added or
    changed since the file's newest ``timestamp`` and applies ACLED's
    deletions; UCDP fetches from the file's newest ``date_start`` on. Changed
    events replace their rows (by ``event_id_cnty`` / ``id``).

    Parameters
    ----------
    source
        "acled" or "ucdp".
    country, since, until, api_url, version, cache, http, progress
        As for :func:`fetch_acled` and :func:`fetch_ucdp` (`version`: UCDP only).
    out
        The CSV to write.
    update
        Update `out` in place rather than fetch everything again.

    Raises
    ------
    InputError
        For a bad option or an unreadable `out` to update.
    FetchError
        For a credential, network or server problem.
    """
    if source not in {"acled", "ucdp"}:
        msg = f"Unknown source {source!r}: use `acled` or `ucdp`."
        raise InputError(msg)
    key = "event_id_cnty" if source == "acled" else "id"
    header: list[str] = []
    old: list[dict[str, str]] = []
    updating = update and Path(out).exists()
    if updating:
        header, old = read_csv_rows(out)
    common: dict[str, Any] = {"cache": cache, "http": http, "progress": progress}
    if source == "acled":
        try:
            stamps = [int(float(r["timestamp"])) for r in old if r.get("timestamp", "").strip()]
        except ValueError as exc:
            msg = (
                f"{out} has a `timestamp` that is not a number ({exc}): fetch it again "
                "without `--update`."
            )
            raise InputError(msg) from exc
        fetched = fetch_acled(
            country,
            since,
            until,
            api_url=api_url or ACLED_API,
            updated_since=max(stamps) if updating and stamps else None,
            **common,
        )
    else:
        starts = [r["date_start"][:10] for r in old if r.get("date_start", "").strip()]
        first = max([_day(since, "since"), *starts]) if updating else since
        fetched = fetch_ucdp(
            country, first, until, api_url=api_url or UCDP_API, version=version, **common
        )
    rows, added, changed, deleted = apply_update(
        old, fetched.rows, key=key, deleted=fetched.deleted
    )
    if not updating:
        added, changed = len(rows), 0
    path = write_csv_rows(out, rows, _columns(rows, header))
    return FetchSummary(
        path=path,
        events=len(rows),
        pages=fetched.pages,
        from_cache=fetched.from_cache,
        added=added,
        changed=changed,
        deleted=deleted,
    )
