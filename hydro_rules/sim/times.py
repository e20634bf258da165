"""Times as users write them (ISO 8601, UTC by default) and as the engine counts them (epoch seconds),
and as a site reads them: in its own time zone (`site.timezone`)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo

DEFAULT_START = "2026-01-01T00:00:00Z"
UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Z", ""})


def parse_time(text: str) -> float:
    """Epoch seconds of an ISO 8601 date or date-time (UTC unless an offset is given)."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@cache
def zone_info(name: str | None) -> ZoneInfo | None:
    """The ZoneInfo of a site's `timezone`; None for UTC or a name zoneinfo does not know (times stay UTC)."""
    if name is None or name in UTC_NAMES:
        return None
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        return None


def timezone_name(name: str | None) -> str:
    """The name times are shown in: the site's, or UTC when it has none zoneinfo knows."""
    return "UTC" if zone_info(name) is None else name


def local(t: float, tz: str | None) -> datetime:
    info = zone_info(tz)
    return datetime.fromtimestamp(t, UTC) if info is None else datetime.fromtimestamp(t, info)


def local_iso(t: float, tz: str | None) -> str:
    """ISO 8601 with the site's UTC offset: `2026-01-08T10:00:00+01:00` (`+00:00` in UTC)."""
    return local(t, tz).isoformat(timespec="seconds")


def stamp(t: float, tz: str | None) -> str:
    """A time in a sentence: `iso` for a UTC site, the local ISO time with its offset otherwise."""
    return iso(t) if zone_info(tz) is None else local_iso(t, tz)


def minute(t: float, tz: str | None) -> str:
    """`2026-01-08 10:00` in the site's time zone (timeline lines)."""
    return local(t, tz).strftime("%Y-%m-%d %H:%M")


def dur(s) -> str:
    """Seconds as people read them: 45 s, 12 min, 3.5 h, 2.1 d."""
    if s is None:
        return "never"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min".replace(".0 min", " min")
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"
