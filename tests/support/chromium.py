"""Drive a headless Chromium through the DevTools protocol (CDP) over its WebSocket: navigate, type, click,
read the page and take screenshots. Only loopback is reachable: host names never resolve.

Needs the Debian `chromium` binary (LIFEBOAT_TEST_CHROMIUM) and the `websockets` package (an Airflow
dependency); nothing is downloaded.
"""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.serving.serving_support import free_port

#: Every host name fails to resolve (IP literals such as 127.0.0.1 still work): no request leaves the machine.
OFFLINE_FLAGS = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


class BrowserError(AssertionError):
    """The page did not reach the expected state; the message says what was awaited and what was seen."""


class Browser:
    """One headless Chromium with one page."""

    def __init__(self, binary: str, profile: Path, width: int = 1400, height: int = 1000) -> None:
        port = free_port()
        self._process = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                f"--remote-debugging-port={port}",
                "--remote-allow-origins=*",
                f"--window-size={width},{height}",
                *OFFLINE_FLAGS,
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._ids = itertools.count(1)
        self._ws = self._connect(port)
        self.send("Page.enable")
        self.send("Runtime.enable")

    def _connect(self, port: int, timeout: float = 30.0) -> ClientConnection:
        deadline = time.monotonic() + timeout
        while True:
            try:
                targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    return connect(pages[0]["webSocketDebuggerUrl"], max_size=64 * 2**20, open_timeout=10)
            except httpx.HTTPError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise BrowserError(f"Chromium did not open its DevTools port {port}")
            time.sleep(0.2)

    def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """Call one CDP method and return its result (events received meanwhile are dropped)."""
        call_id = next(self._ids)
        self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == call_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page (promises awaited) and return its value."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}...: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def goto(self, url: str) -> None:
        """Open ``url`` and wait until its document has loaded."""
        self.send("Page.navigate", url=url)
        time.sleep(0.3)
        self.wait_for("document.readyState === 'complete'", f"{url} to load")

    def wait_for(self, condition: str, what: str, timeout: float = 60.0) -> Any:
        """Poll a JavaScript condition until it is truthy; raise with the page's text when it never is."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(condition)
            except BrowserError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(
                    f"timed out waiting for {what} at {self.url()}; the page says: {self.text()[:1500]!r}"
                )
            time.sleep(0.5)

    def url(self) -> str:
        """The page's current URL."""
        return str(self.evaluate("location.href"))

    def text(self) -> str:
        """The visible text of the page (and of same-origin iframes)."""
        value = self.evaluate(
            "(() => { let t = document.body ? document.body.innerText : '';"
            " for (const f of document.querySelectorAll('iframe')) {"
            "  try { t += '\\n' + f.contentDocument.body.innerText; } catch (e) {} }"
            " return t; })()"
        )
        return str(value or "")

    def type_into(self, selector: str, value: str) -> None:
        """Focus the element matching ``selector`` and type ``value`` as keystrokes (React sees them)."""
        found = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return false;"
            " e.focus(); e.select && e.select(); return true; })()"
        )
        if not found:
            raise BrowserError(f"no element matches {selector} at {self.url()}")
        self.send("Input.insertText", text=value)

    def click(self, selector: str) -> None:
        """Click the element matching ``selector``."""
        found = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return false;"
            " e.click(); return true; })()"
        )
        if not found:
            raise BrowserError(f"no element matches {selector} at {self.url()}")

    def screenshot(self, path: Path) -> Path:
        """Save a PNG of the page as it is now."""
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        """Close the connection and end Chromium."""
        try:
            self._ws.close()
        finally:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
