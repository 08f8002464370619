"""opskit.testing.browser's DevTools pipe: no message of a read is lost (no browser needed)."""

from __future__ import annotations

import json
import os

from opskit.testing.browser import _Pipe


def test_events_read_together_with_the_answer_are_kept():
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    pipe = _Pipe(to_browser_w, from_browser_r)
    msgs = [{"method": "Network.requestWillBeSent", "params": {"request": {"url": "http://a/1"}}},
            {"id": 1, "result": {"ok": True}},
            {"method": "Network.requestWillBeSent", "params": {"request": {"url": "http://a/2"}}}]
    os.write(from_browser_w, b"".join(json.dumps(m).encode() + b"\0" for m in msgs))  # one read
    try:
        assert pipe.send("Page.navigate", {"url": "x"}, timeout=5) == {"ok": True}
        assert [e["params"]["request"]["url"] for e in pipe.events] == ["http://a/1", "http://a/2"]
        sent = os.read(to_browser_r, 1 << 16).rstrip(b"\0")
        assert json.loads(sent) == {"id": 1, "method": "Page.navigate", "params": {"url": "x"}}
    finally:
        for fd in (to_browser_r, to_browser_w, from_browser_r, from_browser_w):
            os.close(fd)
