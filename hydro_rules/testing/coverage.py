"""Which states and transitions of the rule set's machines the tests reached."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from ..lang import model as M


class Coverage:
    def __init__(self, rs: M.RuleSet):
        self.states = {(m.name, s) for m in rs.machines.values() for s in m.states}
        self.transitions = {
            (m.name, s.name, i): t
            for m in rs.machines.values()
            for s in m.states.values()
            for i, t in enumerate(s.transitions)
        }
        self.seen_states: set = set()
        self.seen_transitions: set = set()

    def add(self, result) -> None:
        self.seen_states |= result.states & self.states
        self.seen_transitions |= result.transitions & set(self.transitions)

    @property
    def percent(self) -> float:
        total = len(self.states) + len(self.transitions)
        if not total:
            return 100.0
        return 100.0 * (len(self.seen_states) + len(self.seen_transitions)) / total

    def print(self, console: Console) -> None:
        console.print(
            f"[bold]Coverage[/] {self.percent:.1f}%: states {len(self.seen_states)}/{len(self.states)}, "
            f"transitions {len(self.seen_transitions)}/{len(self.transitions)}"
        )
        for m, s in sorted(self.states - self.seen_states):
            console.print(f"  [yellow]state never reached[/] {escape(m)}.{escape(s)}")
        for key in sorted(set(self.transitions) - self.seen_transitions):
            t = self.transitions[key]
            how = t.describe()
            console.print(
                f"  [yellow]transition never taken[/] {escape(key[1])} → {escape(t.target)}"
                f" ({escape(how)}) at {t.span.path}:{t.span.line}"
            )
