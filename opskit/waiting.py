"""The one waiting helper: every poll in opskit goes through ``wait_until``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from opskit.errors import WaitTimeout

T = TypeVar("T")


def wait_until(
    check: Callable[[], T],
    timeout: float,
    what: str,
    *,
    interval: float = 0.2,
    hint: str | None = None,
    max_interval: float = 2.0,
) -> T:
    """Call ``check`` until it returns a truthy value, and return that value.

    Exceptions raised by ``check`` count as "not yet"; the last one is named in the
    timeout error, which says what was waited for and for how long.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    delay = interval
    while True:
        try:
            value = check()
            if value:
                return value
            last_exc = None
        except Exception as exc:  # noqa: BLE001 - reported in the timeout error
            last_exc = exc
        now = time.monotonic()
        if now >= deadline:
            detail = f" (last error: {last_exc})" if last_exc else ""
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}{detail}", hint)
        time.sleep(min(delay, max(0.0, deadline - now)))
        delay = min(delay * 1.5, max_interval)
