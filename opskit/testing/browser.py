"""Open a page in a real headless Chromium, offline, and say what happened: for the tests of
opskit's HTML reports (and anyone's). Stdlib only: the DevTools protocol over a pipe
(``--remote-debugging-pipe``: JSON messages ending in NUL on fds 3 and 4), no driver.

``open_page(path)`` loads ``file://PATH`` with networking disabled (a new network namespace
where ``unshare`` allows it, and in any case a proxy and host resolver that lead nowhere),
waits until the page's figures say they rendered, and returns a ``PageVisit``: every request
that was not ``file:``/``data:``, console errors and uncaught exceptions, the result of a
script evaluated in the page, and a PNG screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Flags from ENVIRONMENT.md: without the last three Chromium reaches out at every start.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--mute-audio", "--hide-scrollbars", "--window-size=1200,900",
         "--proxy-server=http://127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--remote-debugging-pipe"]
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    env = os.environ.get("OPSKIT_CHROMIUM")
    if env:
        return env
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


@dataclass
class PageVisit:
    url: str
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    console_errors: list[str] = field(default_factory=list)
    result: Any = None  # what ``probe`` returned
    screenshot: bytes = b""

    @property
    def network_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(("file:", "data:", "blob:", "about:"))]


class _Pipe:
    def __init__(self, write_fd: int, read_fd: int):
        self.w, self.r = write_fd, read_fd
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict:
        self.next_id += 1
        msg: dict = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        want = self.next_id
        deadline = time.monotonic() + timeout
        answer = None
        while answer is None:
            # every message of a read is kept: the events after the answer in the same read
            # (a loaded machine batches them) were lost when the answer returned at once
            for m in self._read(deadline):
                if m.get("id") == want:
                    answer = m
                else:
                    self.events.append(m)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def _read(self, deadline: float) -> list[dict]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer from Chromium over the DevTools pipe")
        ready, _, _ = select.select([self.r], [], [], left)
        if not ready:
            return []
        chunk = os.read(self.r, 1 << 20)
        if not chunk:
            raise RuntimeError("Chromium closed the DevTools pipe (it exited)")
        self.buf += chunk
        *msgs, self.buf = self.buf.split(b"\0")
        return [json.loads(m) for m in msgs if m]

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                self.events.extend(self._read(deadline))


def _high_fd(fd: int) -> int:
    new = fcntl.fcntl(fd, fcntl.F_DUPFD, 100)
    os.close(fd)
    return new


def _launch(binary: str, profile: str) -> tuple[subprocess.Popen, _Pipe]:
    cmd_r, cmd_w = map(_high_fd, os.pipe())
    res_r, res_w = map(_high_fd, os.pipe())

    def child() -> None:  # the protocol's fds: 3 reads commands, 4 writes answers
        os.dup2(cmd_r, 3)
        os.dup2(res_w, 4)

    argv = [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
    if os.geteuid() == 0 and shutil.which("unshare"):
        argv = ["unshare", "--net", "--", *argv]  # no network at all inside
    # close_fds=False: closing would also close 3 and 4 after child() made them. Python's own
    # fds are close-on-exec, so nothing else leaks into the browser.
    # start_new_session: the browser's helpers (zygote, renderer, GPU process) share its process
    # group, so all of them are stopped before the profile folder is removed.
    proc = subprocess.Popen(argv, preexec_fn=child, close_fds=False,  # noqa: PLW1509
                            start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(cmd_r)
    os.close(res_w)
    return proc, _Pipe(cmd_w, res_r)


def _wait_group_gone(pgid: int, timeout: float = 10.0) -> None:
    """Wait until no process of group ``pgid`` is left (a helper still writing into the profile
    made its removal fail with 'Directory not empty')."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _collect(visit: PageVisit, events: list[dict]) -> None:
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Network.requestWillBeSent":
            visit.requests.append(p["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            visit.console_errors.append((d.get("exception") or {}).get("description") or d.get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            visit.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            visit.console_errors.append(f"{p['entry'].get('source')}: {p['entry'].get('text')} {p['entry'].get('url', '')}")


def open_page(path: str | os.PathLike, probe: str, ready: str = "true", timeout: float = 60.0) -> PageVisit:
    """Load ``path``, wait until the JS expression ``ready`` is true, evaluate ``probe`` (a JS
    expression whose value is returned by value), screenshot the whole page."""
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no Chromium found (apt-get install chromium; or set OPSKIT_CHROMIUM)")
    url = Path(path).resolve().as_uri()
    visit = PageVisit(url)
    with tempfile.TemporaryDirectory(prefix="opskit-chromium-") as profile:
        proc, pipe = _launch(binary, profile)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            sid = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Network", "Runtime", "Log", "Page"):
                pipe.send(f"{domain}.enable", session=sid)
            pipe.send("Emulation.setDeviceMetricsOverride",
                      {"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=sid)
            pipe.send("Page.navigate", {"url": url}, session=sid)
            # about:blank is 'complete' too: the page asked for must be the one in the tab
            settled = f"location.href === {json.dumps(url)} && !!({ready})"
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                r = pipe.send("Runtime.evaluate", {"expression": settled, "returnByValue": True}, session=sid)
                if r.get("result", {}).get("value") is True:
                    break
                pipe.pump(0.2)
            pipe.pump(0.5)  # late requests or errors after the figures drew
            r = pipe.send("Runtime.evaluate", {"expression": probe, "returnByValue": True}, session=sid)
            visit.result = r.get("result", {}).get("value")
            height = pipe.send("Runtime.evaluate", {"expression": "document.documentElement.scrollHeight",
                                                    "returnByValue": True}, session=sid)["result"]["value"]
            shot = pipe.send("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": 1200, "height": min(int(height), 12000), "scale": 1}},
                session=sid, timeout=60)
            visit.screenshot = base64.b64decode(shot["data"])
            _collect(visit, pipe.events)
            with contextlib.suppress(Exception):
                pipe.send("Browser.close", timeout=5)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            _wait_group_gone(proc.pid)
            if proc.stderr is not None:
                proc.stderr.close()
            os.close(pipe.w)
            os.close(pipe.r)
    return visit
