"""A page opened in a real headless Chromium with every network path closed: its DOM as
the browser has it (``dump_dom``), or a session driven over the DevTools protocol on a
pipe (``open_page``: the requests it made, its console errors, values read from the
page, a screenshot). Skips the test, saying why, when Chromium is not installed (`make
server-binaries` installs Debian's)."""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


def find_chromium() -> str:
    for candidate in (
        os.environ.get("TENURE_CHROMIUM"),
        shutil.which("chromium"),
        shutil.which("chromium-headless-shell"),
        "/usr/lib/chromium/chromium",
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip(
        "Chromium not found: run `make server-binaries` (installs Debian's chromium) "
        "or set TENURE_CHROMIUM"
    )


def without_network() -> list[str]:
    """A prefix running the browser in a network namespace of its own (nothing but a
    loopback that is down) where the system allows it; the flags close the rest."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    probe = subprocess.run([unshare, "--net", "true"], capture_output=True, check=False)
    return [unshare, "--net"] if probe.returncode == 0 else []


def _command(profile: Path, *flags: str) -> list[str]:
    command = [
        *without_network(),
        find_chromium(),
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--proxy-server=http://127.0.0.1:9",  # the discard port: nothing gets out
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        *flags,
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.insert(command.index("--headless"), "--no-sandbox")  # root cannot sandbox
    return command


def dump_dom(page: Path, profile: Path) -> str:
    """The page's DOM as Chromium has it once loaded (scripts, had any run, included)."""
    command = _command(
        profile,
        "--virtual-time-budget=2000",  # let timers and handlers run, had the page any
        "--dump-dom",
        page.as_uri(),
    )
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@dataclass
class Visit:
    """What one load of a page did and showed."""

    requests: list[str] = field(default_factory=list)
    """Every URL the page asked for, its own included."""
    errors: list[str] = field(default_factory=list)
    """Console errors, uncaught exceptions and browser log entries of level error (a
    Content-Security-Policy violation is one)."""
    values: dict[str, Any] = field(default_factory=dict)
    """What each expression given to ``open_page`` evaluated to in the loaded page."""


class _Pipe:
    """The DevTools protocol over ``--remote-debugging-pipe``: JSON messages, each
    ended by a NUL byte, commands on the browser's fd 3, answers and events on fd 4."""

    def __init__(self, command: list[str], timeout: float, log: Path) -> None:
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()

        def wire() -> None:  # in the child: the pipes at 3 and 4, whatever they were
            high_in, high_out = os.dup(to_browser), os.dup(from_browser)
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)

        self.log = log
        with log.open("wb") as written:  # a file: the browser never blocks on a full pipe
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=written,
                stderr=written,
                preexec_fn=wire,
                pass_fds=(3, 4),
            )
        os.close(to_browser)
        os.close(from_browser)
        self._deadline = time.monotonic() + timeout
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str = "") -> Any:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._message()
            if answer.get("id") == self._next:
                assert "error" not in answer, (method, answer["error"])
                return answer.get("result", {})
            self.events.append(answer)

    def wait_for(self, method: str) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._message()
            self.events.append(event)
            if event.get("method") == method:
                return event

    def _message(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = self._deadline - time.monotonic()
            assert left > 0, "the browser did not answer in time"
            ready, _, _ = select.select([self._read], [], [], left)
            if ready:
                chunk = os.read(self._read, 1 << 20)
                assert chunk, "the browser closed its pipe: " + self._stderr()
                self._buffer += chunk
        text, _, self._buffer = self._buffer.partition(b"\0")
        decoded: dict[str, Any] = json.loads(text)
        return decoded

    def _stderr(self) -> str:
        self.process.kill()
        self.process.wait(timeout=30)
        return self.log.read_text(errors="replace")[-2000:]

    def close(self) -> None:
        try:
            os.write(self._write, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait(timeout=30)
        finally:
            os.close(self._write)
            os.close(self._read)


def open_page(
    page: Path,
    profile: Path,
    *,
    evaluate: dict[str, str] | None = None,
    screenshot: Path | None = None,
    width: int = 1280,
    timeout: float = 120,
) -> Visit:
    """Load ``page`` in a headless Chromium with the network closed, through the
    DevTools protocol: record every request and every error, evaluate ``evaluate``'s
    expressions (their values by name) and save a full-page PNG to ``screenshot``."""
    profile.mkdir(parents=True, exist_ok=True)
    command = _command(profile, "--remote-debugging-pipe", "about:blank")
    pipe = _Pipe(command, timeout, profile / "chromium.log")
    visit = Visit()
    try:
        targets = pipe.send("Target.getTargets")["targetInfos"]
        target = next(t["targetId"] for t in targets if t["type"] == "page")
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            pipe.send(f"{domain}.enable", session=session)
        metrics = {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}
        pipe.send("Emulation.setDeviceMetricsOverride", metrics, session=session)
        pipe.send("Page.navigate", {"url": page.as_uri()}, session=session)
        pipe.wait_for("Page.loadEventFired")
        for name, expression in (evaluate or {}).items():
            result = pipe.send(
                "Runtime.evaluate",
                {"expression": expression, "returnByValue": True},
                session=session,
            )
            assert "exceptionDetails" not in result, (name, result["exceptionDetails"])
            visit.values[name] = result["result"].get("value")
        if screenshot is not None:
            size = pipe.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            shot = pipe.send(
                "Page.captureScreenshot",
                {"format": "png", "captureBeyondViewport": True, "clip": clip},
                session=session,
            )
            screenshot.write_bytes(base64.b64decode(shot["data"]))
    finally:
        pipe.close()
    for event in pipe.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            visit.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            visit.errors.append(json.dumps(params.get("args"), ensure_ascii=False)[:500])
        elif method == "Runtime.exceptionThrown":
            visit.errors.append(json.dumps(params.get("exceptionDetails"))[:500])
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            visit.errors.append(str(params["entry"].get("text"))[:500])
    return visit
