"""ACLED and UCDP clients against a local server that speaks their protocols (no internet)."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import convoyrisk as cr
from convoyrisk._errors import FetchError
from convoyrisk.fetch import Http, fetch_acled, fetch_to_file, fetch_ucdp

from .helpers.fakeapi import PASSWORD, UCDP_TOKEN, USER, FakeApi, acled_event, ged_event, serve


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONVOYRISK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ACLED_USERNAME", USER)
    monkeypatch.setenv("ACLED_PASSWORD", PASSWORD)
    monkeypatch.setenv("UCDP_TOKEN", UCDP_TOKEN)


class Waits(list[float]):
    """Records the waits asked for instead of sleeping (the server's Retry-After is checked)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def quick(waits: Waits | None = None) -> Http:
    return Http(
        retries=3,
        backoff_s=0.01,
        max_wait_s=30,
        timeout_s=5,
        sleep=waits if waits is not None else Waits(),
    )


def reads(api: FakeApi, path: str = "/api/acled/read") -> list[str]:
    return [p for m, p, _, _ in api.requests if m == "GET" and p.startswith(path)]


def twelve() -> FakeApi:
    return FakeApi(acled=[acled_event(k) for k in range(1, 13)])


def test_acled_pages_until_a_short_page() -> None:
    api = twelve()
    api.acled.append(acled_event(99, date="2022-01-01"))  # outside the dates asked
    with serve(api) as url:
        got = fetch_acled(
            "Mali", "2023-01-01", "2023-12-31", api_url=url, page_size=5, http=quick()
        )
    assert [r["event_id_cnty"] for r in got.rows] == [f"MLI{k}" for k in range(1, 13)]
    assert got.pages == 3  # 5 + 5 + 2
    pages = reads(api)
    assert [p.split("page=")[1] for p in pages] == ["1", "2", "3"]
    assert "event_date=2023-01-01|2023-12-31" in pages[0]
    assert "event_date_where=BETWEEN" in pages[0]
    assert "limit=5" in pages[0]
    assert api.grants == ["password"]
    # the password travels only in the token request's form body, never in a URL
    assert not any(PASSWORD in p or "password" in p for _, p, _, _ in api.requests)
    auth = {h.get("Authorization") for m, _, h, _ in api.requests if m == "GET"}
    assert auth == {"Bearer access-1"}


def test_acled_token_refused_mid_run_is_refreshed() -> None:
    api = twelve()
    api.token_uses = 2  # each access token works for two reads, then 401
    with serve(api) as url:
        got = fetch_acled(
            "Mali", "2023-01-01", "2023-12-31", api_url=url, page_size=4, http=quick()
        )
    assert len(got.rows) == 12
    assert api.grants == ["password", "refresh_token"]


def test_acled_expired_token_is_renewed_before_use_and_login_again_if_refresh_fails() -> None:
    api = twelve()
    api.expires_in = 0  # every token is past its life when the next page is asked for
    api.refuse_refresh = True
    with serve(api) as url:
        got = fetch_acled(
            "Mali", "2023-01-01", "2023-12-31", api_url=url, page_size=5, http=quick()
        )
    assert len(got.rows) == 12
    # 3 pages: a login, then before pages 2 and 3 a refused refresh and a new login
    assert api.grants == ["password", "password", "password"]


def test_429_waits_as_told_and_5xx_backs_off() -> None:
    api = twelve()
    api.throttle = {2: "2"}
    api.fail_5xx = {4}
    waits = Waits()
    with serve(api) as url:
        got = fetch_acled(
            "Mali", "2023-01-01", "2023-12-31", api_url=url, page_size=5, http=quick(waits)
        )
    assert len(got.rows) == 12
    assert waits == [2.0, 0.01]  # Retry-After: 2, then the first backoff step


def test_a_dropped_connection_is_retried() -> None:
    api = twelve()
    api.drop = {2}
    waits = Waits()
    with serve(api) as url:
        got = fetch_acled(
            "Mali", "2023-01-01", "2023-12-31", api_url=url, page_size=5, http=quick(waits)
        )
    assert len(got.rows) == 12
    assert waits == [0.01]


def test_retry_after_is_bounded_and_retries_end() -> None:
    api = twelve()
    api.throttle = {1: "3600", 2: None, 3: None, 4: None}
    waits = Waits()
    with (
        serve(api) as url,
        pytest.raises(FetchError, match="still answered HTTP 429 after 4 tries"),
    ):
        fetch_acled("Mali", "2023-01-01", "2023-12-31", api_url=url, http=quick(waits))
    assert waits == [30.0, 0.02, 0.04]  # an hour cut to max_wait_s; then 0.01 * 2**k


def test_bad_credentials_say_which_and_never_show_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACLED_PASSWORD", "wrong password")
    with serve(twelve()) as url, pytest.raises(FetchError) as info:
        fetch_acled("Mali", "2023-01-01", api_url=url, http=quick())
    text = str(info.value)
    assert "ACLED_USERNAME and ACLED_PASSWORD" in text
    assert "HTTP 401" in text
    assert "wrong password" not in text
    assert USER not in text


def test_missing_credential_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACLED_PASSWORD")
    with serve(twelve()) as url, pytest.raises(FetchError, match="ACLED_PASSWORD is not set"):
        fetch_acled("Mali", "2023-01-01", api_url=url, http=quick())


def test_forbidden_read_names_the_permission() -> None:
    api = twelve()
    api.forbid_read = True
    with serve(api) as url, pytest.raises(FetchError, match=r"HTTP 403.*lacks API access"):
        fetch_acled("Mali", "2023-01-01", api_url=url, http=quick())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_network_is_one_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(FetchError, match=r"Cannot reach 127\.0\.0\.1"):
        fetch_acled("Mali", "2023-01-01", api_url=url, http=quick())


def test_a_repeated_query_comes_from_the_cache() -> None:
    api = twelve()
    with serve(api) as url:
        first = fetch_acled("Mali", "2023-01-01", "2023-12-31", api_url=url, http=quick())
        n = len(api.requests)
        again = fetch_acled("Mali", "2023-01-01", "2023-12-31", api_url=url, http=quick())
        other = fetch_acled("Mali", "2023-06-01", "2023-12-31", api_url=url, http=quick())
    assert (first.from_cache, again.from_cache, other.from_cache) == (False, True, False)
    assert again.rows == first.rows
    assert len(api.requests) > n  # only the other dates went to the server
    assert not any("2023-01-01" in p for _, p, _, _ in api.requests[n:])


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_fetched_acled_file_reads_back_like_an_export(tmp_path: Path) -> None:
    out = tmp_path / "acled.csv"
    with serve(twelve()) as url:
        s = fetch_to_file(
            "acled", country="Mali", since="2023-01-01", until="2023-12-31", out=out, api_url=url
        )
    assert (s.events, s.pages) == (12, 1)
    header = out.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header == list(acled_event(1))  # ACLED's own columns, in its order
    table = cr.read_incidents(out)
    assert table.dataset == "acled"
    assert len(table.incidents) == 12
    assert table.incidents["killed"].sum() == sum(k % 3 for k in range(1, 13))


def test_update_fetches_changes_since_the_newest_timestamp_and_applies_deletions(
    tmp_path: Path,
) -> None:
    out = tmp_path / "acled.csv"
    api = twelve()
    with serve(api) as url:
        fetch_to_file("acled", country="Mali", since="2023-01-01", out=out, api_url=url)
        # ACLED changes one event, adds one and deletes two after the file was written
        changed = acled_event(5, stamp=1_700_000_500)
        changed["fatalities"] = "7"
        api.acled[4] = changed
        api.acled.append(acled_event(13, stamp=1_700_000_600))
        api.deleted = [
            {"event_id_cnty": "MLI2", "deleted_timestamp": "1700000400"},
            {"event_id_cnty": "MLI3", "deleted_timestamp": "1600000000"},  # before the file
            {"event_id_cnty": "MLI7", "deleted_timestamp": "1700000700"},
        ]
        n = len(api.requests)
        s = fetch_to_file(
            "acled", country="Mali", since="2023-01-01", out=out, api_url=url, update=True
        )
    asked = [p for _, p, _, _ in api.requests[n:] if "/api/" in p]
    assert all("timestamp=1700000000" in p for p in asked)  # the file's newest timestamp
    assert any(p.startswith("/api/deleted/read") for p in asked)
    rows = {r["event_id_cnty"]: r for r in read_rows(out)}
    assert sorted(rows, key=lambda k: int(k[3:])) == [
        f"MLI{k}" for k in (1, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13)
    ]
    assert rows["MLI5"]["fatalities"] == "7"
    # the server answers every event with timestamp >= the file's newest: 12 are "changed"
    assert (s.added, s.deleted, s.events) == (1, 2, 11)


def test_ucdp_pages_from_zero_with_the_token_header(tmp_path: Path) -> None:
    api = FakeApi(ged=[ged_event(k) for k in range(7)] + [ged_event(50, date="2020-01-01")])
    out = tmp_path / "ged.csv"
    with serve(api) as url:
        got = fetch_ucdp("Mali", "2023-01-01", "2023-12-31", api_url=url, page_size=3, http=quick())
        fetch_to_file("ucdp", country="432", since="2023-01-01", out=out, api_url=url)
    assert [r["id"] for r in got.rows] == [str(900_000 + k) for k in range(7)]
    pages = reads(api, "/api/gedevents/25.1")[:3]
    assert [p.split("page=")[1].split("&")[0] for p in pages] == ["0", "1", "2"]
    assert all("Country=432" in p and "pagesize=3" in p for p in pages)
    sent = [{k.lower(): v for k, v in h.items()} for _, _, h, _ in api.requests]
    assert all(h["x-ucdp-access-token"] == UCDP_TOKEN for h in sent)
    table = cr.read_incidents(out)
    assert (table.dataset, len(table.incidents)) == ("ged", 7)


def test_ucdp_bad_token_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UCDP_TOKEN", "expired")
    with serve(FakeApi(ged=[ged_event(1)])) as url, pytest.raises(FetchError) as info:
        fetch_ucdp("Mali", "2023-01-01", api_url=url, http=quick())
    assert "UCDP_TOKEN" in str(info.value)
    assert "expired" not in str(info.value)


def test_unknown_country_asks_for_the_code() -> None:
    with pytest.raises(cr.InputError, match="--country 432"):
        fetch_ucdp("Atlantis", "2023-01-01", api_url="http://127.0.0.1:1")


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "convoyrisk", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


def test_cli_fetch_writes_the_file_and_reports_pages(tmp_path: Path) -> None:
    out = tmp_path / "acled.csv"
    env = {"CONVOYRISK_CACHE_DIR": str(tmp_path / "c")}
    with serve(twelve()) as url:
        args = ["fetch", "acled", "--country", "Mali", "--since", "2023-01-01", "--out", str(out)]
        proc = cli(*args, "--api-url", url, env=env)
        again = cli(*args, "--api-url", url, "-q", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "acled: page 1, 12 events so far" in proc.stderr
    assert f"12 acled events (1 page(s) downloaded) written to {out}" in proc.stdout
    assert PASSWORD not in proc.stdout + proc.stderr
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert len(read_rows(out)) == 12


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"ACLED_PASSWORD": "nope"}, "check ACLED_USERNAME and ACLED_PASSWORD"),
        ({"ACLED_USERNAME": ""}, "ACLED_USERNAME is not set"),
    ],
)
def test_cli_fetch_credential_errors_are_one_line_exit_2(
    tmp_path: Path, env: dict[str, str], needle: str
) -> None:
    out = tmp_path / "acled.csv"
    with serve(twelve()) as url:
        proc = cli(
            "fetch", "acled", "--country", "Mali", "--since", "2023-01-01", "--out", str(out),
            "--api-url", url, env={"CONVOYRISK_CACHE_DIR": str(tmp_path / "c"), **env},
        )  # fmt: skip
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr
    assert not out.exists()  # nothing half-written


def test_cli_fetch_no_network_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = cli(
        "fetch", "ucdp", "--country", "Mali", "--since", "2023-01-01",
        "--out", str(tmp_path / "g.csv"), "--api-url", f"http://127.0.0.1:{free_port()}",
        env={"CONVOYRISK_CACHE_DIR": str(tmp_path / "c")},
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Cannot reach 127.0.0.1" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_ucdp_update_asks_from_the_newest_date_and_replaces_by_id(tmp_path: Path) -> None:
    api = FakeApi(ged=[ged_event(k, date=f"2023-0{k}-15") for k in range(1, 5)])
    out = tmp_path / "ged.csv"
    with serve(api) as url:
        fetch_to_file("ucdp", country="Mali", since="2023-01-01", out=out, api_url=url)
        revised = ged_event(4, date="2023-04-15")
        revised["best"] = 9
        api.ged[3] = revised
        api.ged.append(ged_event(5, date="2023-05-02"))
        n = len(api.requests)
        s = fetch_to_file(
            "ucdp", country="Mali", since="2023-01-01", out=out, api_url=url, update=True
        )
    assert all("StartDate=2023-04-15" in p for _, p, _, _ in api.requests[n:])
    rows = {r["id"]: r for r in read_rows(out)}
    assert sorted(rows) == [str(900_000 + k) for k in range(1, 6)]
    assert rows["900004"]["best"] == "9"
    assert (s.added, s.changed, s.deleted) == (1, 1, 0)
