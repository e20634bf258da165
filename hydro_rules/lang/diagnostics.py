"""Diagnostics: what a check found, where, and under which stable code.

Every code has a page in docs/diagnostics/<CODE>.md; the codes never change
meaning once released.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from enum import Enum

from .source import Span


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"  # a fact `check` shows (never a problem: no exit code, not counted by --strict)


E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO  # noqa: E741

#: code -> (severity, short title). The title heads the code's doc page.
CODES: dict[str, tuple[Severity, str]] = {
    # files and syntax
    "HR001": (E, "missing or malformed language header"),
    "HR002": (E, "unsupported language version"),
    "HR003": (E, "syntax error"),
    "HR004": (E, "file cannot be read as rule text"),
    "HR005": (E, "rule set manifest missing or invalid"),
    "HR006": (E, "nesting too deep"),
    "HR007": (E, "construct of a later language version"),
    # names
    "HR101": (E, "unknown metric"),
    "HR102": (E, "unknown channel"),
    "HR103": (E, "unknown state"),
    "HR104": (E, "unknown alert"),
    "HR105": (E, "unknown guard"),
    "HR106": (E, "unknown name"),
    "HR107": (E, "duplicate definition"),
    "HR108": (E, "unknown unit"),
    "HR109": (E, "unknown function or wrong arguments"),
    "HR110": (E, "transition to a missing state"),
    "HR111": (E, "unknown setting"),
    "HR112": (E, "unknown profile or recipe"),
    "HR113": (E, "channel of the wrong kind"),
    "HR114": (E, "one channel's readings claimed by two metrics"),
    "HR115": (E, "replace or extend of a definition no used rule set has"),
    # types and values
    "HR201": (E, "unit mismatch"),
    "HR202": (E, "comparison outside the metric's physical range"),
    "HR203": (E, "minimum greater than maximum"),
    "HR204": (E, "value out of range"),
    "HR205": (E, "condition is not a yes/no question"),
    "HR206": (E, "missing required item"),
    "HR207": (E, "time of day out of range"),
    "HR208": (E, "duration that must be positive is zero or negative"),
    # state machines and safety
    "HR301": (E, "unreachable state"),
    "HR302": (E, "state runs a pump with neither a timeout nor an exit"),
    "HR303": (E, "pump started without its guard"),
    "HR304": (E, "machine without a valid initial state"),
    "HR305": (E, "zone does not bind a channel the rules use"),
    "HR306": (E, "node output bound to two roles or two zones"),
    "HR307": (E, "dosing active in a state where recirculation is stopped"),
    # water cycle, alerts, recipes
    "HR401": (E, "recirculation OFF stretch longer than max_recirc_off"),
    "HR402": (E, "overlapping schedule windows"),
    "HR403": (E, "recipe phases with a gap or an overlap"),
    "HR404": (E, "alert code outside the taxonomy"),
    "HR405": (E, "locking alert with a clear condition"),
    "HR406": (E, "rule or state resolves a locking alert"),
    "HR407": (E, "NC pump held off with no bound"),
    # warnings
    "HR501": (W, "alert without a clear condition"),
    "HR502": (W, "unused definition"),
    "HR503": (W, "alert that nothing raises"),
    "HR504": (W, "NC pump held OFF by a state without a timeout"),
    "HR505": (W, "zone binds no sensor for a metric its rules read"),
    "HR506": (W, "schedule interval the solution-age limit always pre-empts"),
    # information
    "HR601": (I, "longest OFF stretch of an NC pump inside machine states"),
    "HR602": (I, "definition replaced or extended"),
    "HR603": (I, "items inactive in a zone"),
    "HR604": (I, "longest OFF stretch of an NC pump per zone"),
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    hint: str | None = None

    @property
    def severity(self) -> Severity:
        return CODES[self.code][0]

    @property
    def full_message(self) -> str:
        """The message with its hint, for one-line formats (JSON, GitHub annotations)."""
        return self.message + (f" ({self.hint})" if self.hint else "")

    def sort_key(self) -> tuple:
        s = self.span
        return (s.path, s.line, s.column, self.code, self.message)

    def to_json(self) -> dict:
        s = self.span
        return {
            "code": self.code,
            "severity": self.severity.value,
            "file": s.path,
            "line": s.line,
            "column": s.column,
            "end_line": s.end_line,
            "end_column": s.end_column,
            "message": self.full_message,
        }


@dataclass
class Diagnostics:
    """Collects diagnostics of one run, dropping exact repeats. Information (severity info) is
    kept apart in `infos`: it is not a problem, and `items` holds only the problems."""

    items: list[Diagnostic] = field(default_factory=list)
    infos: list[Diagnostic] = field(default_factory=list)
    _seen: set = field(default_factory=set, repr=False)

    def add(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        assert code in CODES, code
        d = Diagnostic(code, message, span, hint)
        key = d.sort_key()
        if key not in self._seen:
            self._seen.add(key)
            (self.infos if d.severity is Severity.INFO else self.items).append(d)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity is Severity.ERROR]

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=Diagnostic.sort_key)


def _words(name: str) -> list[str]:
    return sorted(w for w in name.lower().replace(".", "_").split("_") if w)


def closest(name: str, candidates) -> str | None:
    """The known name `name` is most likely a misspelling of, if any: the same words in another
    order (`water_temp` for `temp_water`, `ec_target` ...), a close spelling, or the same letters
    in another case (`ph` for the unit `pH`, `AND` for `and`)."""
    candidates = list(candidates)
    words = _words(name)
    if len(words) > 1:
        reordered = [c for c in candidates if c != name and _words(c) == words]
        if reordered:
            return reordered[0]
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.7)
    if not close:
        lower = name.lower()
        close = [c for c in candidates if c.lower() == lower][:1]
    return close[0] if close else None


def did_you_mean(name: str, candidates) -> str | None:
    """A "did you mean X?" hint when a known name is close to `name`."""
    close = closest(name, candidates)
    return f"did you mean `{close}`?" if close else None
