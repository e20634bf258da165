"""Logging that a misbehaving node cannot flood: the same key is logged once per interval."""

from __future__ import annotations

import logging
import time

#: the key every message shares once `max_keys` keys are being tracked
OVERFLOW = ("too many distinct keys",)


class Throttled:
    """Log a message for a key at most once per `every_s`; later repeats are counted and reported.

    Keys are often chosen by senders (a node uid, a topic). Once `max_keys` are tracked,
    keys whose interval has passed are forgotten; if that frees nothing, new keys share
    one key, so a sender making up a new key per message is still logged once per interval.
    """

    def __init__(self, logger: logging.Logger, every_s: float = 60.0, max_keys: int = 10_000) -> None:
        self.logger = logger
        self.every_s = every_s
        self.max_keys = max_keys
        self._last: dict[object, tuple[float, int]] = {}

    def log(self, level: int, key: object, msg: str, *args) -> None:
        now = time.monotonic()
        if key not in self._last and len(self._last) >= self.max_keys:
            self._forget_before(now - self.every_s)
            if len(self._last) >= self.max_keys:
                key = OVERFLOW
        last = self._last.get(key)
        if last is not None and now - last[0] < self.every_s:
            self._last[key] = (last[0], last[1] + 1)
            return
        suppressed = last[1] if last else 0
        self._last[key] = (now, 0)
        if suppressed:
            msg += f" ({suppressed} more like this since the last report)"
        self.logger.log(level, msg, *args)

    def _forget_before(self, t: float) -> None:
        """Forget keys last logged before `t` with no repeats left to report."""
        self._last = {k: v for k, v in self._last.items() if v[0] >= t or v[1]}

    def warning(self, key: object, msg: str, *args) -> None:
        self.log(logging.WARNING, key, msg, *args)

    def info(self, key: object, msg: str, *args) -> None:
        self.log(logging.INFO, key, msg, *args)
