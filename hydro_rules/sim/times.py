"""Times as users write them (ISO 8601, UTC by default) and as the engine counts them (epoch seconds)."""

from __future__ import annotations

from datetime import UTC, datetime

DEFAULT_START = "2026-01-01T00:00:00Z"


def parse_time(text: str) -> float:
    """Epoch seconds of an ISO 8601 date or date-time (UTC unless an offset is given)."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
