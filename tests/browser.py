"""Open a page in headless Chromium and report what a reader would see: images, errors, a screenshot.

Talks the DevTools protocol over ``--remote-debugging-pipe`` (JSON messages ending in NUL on
file descriptors 3 and 4 of the browser), so the standard library is enough: no websocket
client, no driver. Chromium is the Debian package (``apt-get install -y chromium``).
"""

from __future__ import annotations

import base64
import dataclasses
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclasses.dataclass
class PageReport:
    images: list[dict[str, Any]]  # src, complete, naturalWidth of every <img>
    errors: list[str]  # console errors, uncaught exceptions, failed loads
    title: str


def _above_nine(fd: int) -> int:
    """A copy of ``fd`` numbered 10 or more (the original is closed)."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class DevTools:
    """One headless Chromium and one page (a flattened session), driven over the pipe."""

    def __init__(self, width: int = 1280, height: int = 900, timeout: float = 20.0):
        self.timeout = timeout
        to_browser_r, self._write = os.pipe()
        self._read, from_browser_w = os.pipe()
        # The ends the browser gets move above 9, where fds 3 and 4 cannot be among them (one
        # redirection below would overwrite the other's source); bash (not dash) takes them there.
        to_browser_r, from_browser_w = (_above_nine(fd) for fd in (to_browser_r, from_browser_w))
        self._profile = tempfile.TemporaryDirectory(prefix="toylab-chromium-")
        # The browser reads commands on fd 3 and answers on fd 4. A shell puts the pipe ends
        # there, so that Python never runs code in a forked copy of this (JAX-threaded) process.
        self._process = subprocess.Popen(
            [shutil.which("bash") or "/bin/bash", "-c", f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}',
             CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--no-default-browser-check", f"--user-data-dir={self._profile.name}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(to_browser_r, from_browser_w))
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer over the DevTools pipe")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise ConnectionError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, *, session: bool = False, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            answer = self._receive(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_for(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._receive(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (TimeoutError, ConnectionError, RuntimeError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._write)
        os.close(self._read)
        self._profile.cleanup()


def inspect(page: Path, screenshot: Path, *, width: int = 1280, height: int = 900) -> PageReport:
    """Load ``page`` (a file), wait for its load event, list its images and its errors, and save
    the first screen (``width`` × ``height``) as a PNG at ``screenshot``."""
    browser = DevTools(width, height)
    try:
        browser.call("Page.navigate", session=True, url=page.resolve().as_uri())
        browser.wait_for("Page.loadEventFired")
        images = browser.call("Runtime.evaluate", session=True, returnByValue=True, expression=(
            "Array.from(document.images).map(i => ({src: i.getAttribute('src'), complete: i.complete, "
            "naturalWidth: i.naturalWidth}))"))["result"]["value"]
        title = browser.call("Runtime.evaluate", session=True, expression="document.title",
                             returnByValue=True)["result"]["value"]
        shot = browser.call("Page.captureScreenshot", session=True, format="png")["data"]
        screenshot.write_bytes(base64.b64decode(shot))
        errors = []
        for event in browser.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(f"console: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                errors.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        return PageReport(images, errors, title)
    finally:
        browser.close()
