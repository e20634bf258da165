"""Logging that a misbehaving node cannot flood: the same key is logged once per interval."""

from __future__ import annotations

import logging
import time


class Throttled:
    """Log a message for a key at most once per `every_s`; later repeats are counted and reported."""

    def __init__(self, logger: logging.Logger, every_s: float = 60.0, max_keys: int = 10_000) -> None:
        self.logger = logger
        self.every_s = every_s
        self.max_keys = max_keys
        self._last: dict[object, tuple[float, int]] = {}

    def log(self, level: int, key: object, msg: str, *args) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.every_s:
            self._last[key] = (last[0], last[1] + 1)
            return
        if len(self._last) >= self.max_keys:
            self._last.clear()
        suppressed = last[1] if last else 0
        self._last[key] = (now, 0)
        if suppressed:
            msg += f" ({suppressed} more like this since the last report)"
        self.logger.log(level, msg, *args)

    def warning(self, key: object, msg: str, *args) -> None:
        self.log(logging.WARNING, key, msg, *args)
