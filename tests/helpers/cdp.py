"""A minimal headless-Chromium driver over the Chrome DevTools protocol (websocket-client).

It starts Debian's ``/usr/bin/chromium`` with a fresh profile, networking
emulated off, and records every request, console message and uncaught
exception of the page, so tests can assert that a map asks for nothing and
logs no error. Used by tests/test_browser.py and by hand::

    .venv/bin/python -m tests.cdp out/kidal_gao_risk.html shot.png
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

import websocket

CHROMIUM = os.environ.get("CONVOYRISK_CHROMIUM", "/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def chromium_path() -> str | None:
    """Path of the Chromium binary, or None when it is not installed."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    return shutil.which("chromium")


class Browser:
    """One headless Chromium with one page, driven over CDP."""

    def __init__(self, profile_dir: Path, *, width: int = 1400, height: int = 900) -> None:
        exe = chromium_path()
        if exe is None:
            msg = "Chromium is not installed: run `make browser` (apt-get install chromium)."
            raise RuntimeError(msg)
        profile_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                exe,
                *FLAGS,
                f"--user-data-dir={profile_dir}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                msg = "Chromium did not start (no DevToolsActivePort)."
                raise RuntimeError(msg)
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
            targets = json.load(r)
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True
        )
        self._id = 0
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.send(f"{domain}.enable")
        self.send(
            "Network.emulateNetworkConditions",
            offline=True,
            latency=0,
            downloadThroughput=-1,
            uploadThroughput=-1,
        )
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a CDP method and return its result (events seen meanwhile are kept)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    text = f"{method}: {msg['error']}"
                    raise RuntimeError(text)
                return dict(msg.get("result", {}))
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait for an event (looking first at the ones already received)."""
        for ev in self.events:
            if ev["method"] == method:
                return ev
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return msg
        msg = f"no {method} within {timeout} s"
        raise TimeoutError(msg)

    def open(self, path: Path, *, ready: str = "window.convoyriskLayers !== undefined") -> None:
        """Load a local file and wait until `ready` is true in the page."""
        self.events.clear()
        self.send("Page.navigate", url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")
        deadline = time.monotonic() + 60
        while not self.eval(ready):
            self.drain(0.1)
            thrown = [e for e in self.events if e["method"] == "Runtime.exceptionThrown"]
            if thrown:
                raise RuntimeError(json.dumps(thrown[0]["params"])[:2000])
            if time.monotonic() > deadline:
                msg = f"page not ready: {ready}"
                raise TimeoutError(msg)

    def eval(self, expression: str) -> Any:
        """Evaluate `expression` in the page and return its value."""
        res = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in res:
            raise RuntimeError(json.dumps(res["exceptionDetails"])[:2000])
        return res["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        """Save a PNG of the viewport."""
        time.sleep(0.3)  # let Leaflet finish its zoom animation
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def drain(self, seconds: float = 0.5) -> None:
        """Collect the events that arrive within `seconds`."""
        self.ws.settimeout(seconds)
        with contextlib.suppress(websocket.WebSocketTimeoutException):
            while True:
                msg = json.loads(self.ws.recv())
                if "method" in msg:
                    self.events.append(msg)
        self.ws.settimeout(60)

    def requests(self) -> list[str]:
        """URLs the page asked for since it was opened."""
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
        ]

    def errors(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions and failed loads."""
        out = []
        mine = {
            e["params"]["requestId"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
        }
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                out.append(json.dumps(p["exceptionDetails"])[:500])
            elif e["method"] == "Runtime.consoleAPICalled" and p["type"] in {"error", "warning"}:
                out.append(" ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] in {"error", "warning"}:
                out.append(f"{p['entry'].get('url', '')}: {p['entry']['text']}")
            elif e["method"] == "Network.loadingFailed" and p["requestId"] in mine:
                out.append(f"load failed: {p.get('errorText')}")
        return out

    def close(self) -> None:
        """Close the browser and wait for it."""
        with contextlib.suppress(Exception):
            self.send("Browser.close")
        with contextlib.suppress(Exception):
            self.ws.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str]) -> int:
    """Screenshot a map: ``python -m tests.cdp MAP.html SHOT.png [WIDTHxHEIGHT]``."""
    html, png = Path(argv[0]), Path(argv[1])
    w, h = (int(v) for v in (argv[2] if len(argv) > 2 else "1400x900").split("x"))
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, Browser(Path(tmp), width=w, height=h) as b:
        b.open(html)
        b.screenshot(png)
        b.drain()
        for line in b.errors():
            print("error:", line)  # noqa: T201
        print("requests:", sorted({u[:80] for u in b.requests()}))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
