"""Which states and transitions of the rule set's machines the tests reached."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from ..lang import model as M
from ..lang.activity import zone_activity


class Coverage:
    """States and transitions count when they are active in at least one zone of the rule set: one that
    needs a channel no zone binds cannot be reached by any test (it is listed as not counted)."""

    def __init__(self, rs: M.RuleSet):
        activities = [zone_activity(rs, z) for z in rs.zones]

        def state_counts(m: str, s: str) -> bool:
            return not activities or any(a.state_active(m, s) for a in activities)

        def transition_counts(m: str, s: str, i: int) -> bool:
            return not activities or any(a.transition_active(m, s, i) for a in activities)

        every_state = {(m.name, s) for m in rs.machines.values() for s in m.states}
        every_transition = {
            (m.name, s.name, i): t
            for m in rs.machines.values()
            for s in m.states.values()
            for i, t in enumerate(s.transitions)
        }
        self.states = {k for k in every_state if state_counts(*k)}
        self.transitions = {k: t for k, t in every_transition.items() if transition_counts(*k)}
        #: inactive in every zone: not counted
        self.not_counted = sorted(every_state - self.states) + sorted(set(every_transition) - set(self.transitions))
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
        if self.not_counted:
            console.print(f"  [dim]not counted: {len(self.not_counted)} inactive in every zone[/]")
        for m, s in sorted(self.states - self.seen_states):
            console.print(f"  [yellow]state never reached[/] {escape(m)}.{escape(s)}")
        for key in sorted(set(self.transitions) - self.seen_transitions):
            t = self.transitions[key]
            how = t.describe()
            console.print(
                f"  [yellow]transition never taken[/] {escape(key[1])} → {escape(t.target)}"
                f" ({escape(how)}) at {t.span.path}:{t.span.line}"
            )
