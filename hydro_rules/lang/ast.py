"""The syntax tree of a rule file: what was written, where, nothing resolved.

Nodes are frozen dataclasses, each with the span it came from. Literals keep
the text as written (for the formatter) and their value in base units.
"""

from __future__ import annotations

from dataclasses import dataclass

from .source import Span

node = dataclass(frozen=True, slots=True)


# ---- leaves ----------------------------------------------------------------
@node
class Ident:
    name: str
    span: Span


@node
class Literal:
    """A number, quantity, percentage, duration, time of day, date or yes/no."""

    value: float | bool | str
    dim: str
    text: str
    span: Span


@node
class String:
    value: str
    raw: str
    span: Span


@node
class Comment:
    text: str
    span: Span


# ---- expressions -----------------------------------------------------------
@node
class Path:
    parts: tuple[Ident, ...]
    span: Span

    @property
    def dotted(self) -> str:
        return ".".join(p.name for p in self.parts)


@node
class Call:
    func: Ident
    args: tuple
    span: Span


@node
class Unary:
    op: str  # "-" or "not"
    operand: object
    span: Span


@node
class Binary:
    op: str  # + - * / < <= > >= == != and or
    left: object
    right: object
    span: Span


@node
class IsCheck:
    subject: object
    word: Ident
    span: Span


Expr = Literal | Path | Call | Unary | Binary | IsCheck


@node
class Cond:
    """A condition with an optional hold: `when EXPR for 10m`."""

    expr: Expr
    hold: Literal | Path | None  # a Path: the hold written as a setting (`for dosing.hold`, 1.2)
    span: Span


# ---- block items -------------------------------------------------------------
@node
class Item:
    """A `keyword value...` line inside a block, e.g. `unit mS/cm`, `kind pump`.

    `values` holds Idents, Literals and Strings in written order.
    """

    keyword: str
    values: tuple
    span: Span


@node
class Scope:
    """`for each pump` (each=True, names=(pump,)) or `for pump_a, pump_b`."""

    each: bool
    names: tuple[Ident, ...]
    span: Span


# ---- declarations --------------------------------------------------------------
@node
class Header:
    version: Literal
    span: Span


@node
class RulesetDecl:
    name: Ident
    version: String
    span: Span


@node
class UseDecl:
    path: String
    span: Span


@node
class MetricDecl:
    name: Ident
    items: tuple[Item, ...]
    span: Span


@node
class ChannelDecl:
    name: Ident
    items: tuple[Item, ...]
    span: Span


@node
class SiteDecl:
    uid: Ident
    title: String | None
    items: tuple  # Item (timezone) | GreenhouseDecl
    span: Span


@node
class GreenhouseDecl:
    uid: Ident
    title: String | None
    zones: tuple
    span: Span
    nodes: tuple = ()  # NodeDecl (language 1.1)


@node
class NodeDecl:
    """`node nd-pump-1 { bounded_off yes }` in a greenhouse (language 1.1): what a node can do."""

    uid: Ident
    items: tuple[Item, ...]
    span: Span


@node
class Binding:
    """`pump_recirc on nd-pump-1 [channel key]` or `ph from nd-ph-1`; a metric's binding may name the
    node's channel and the unit that node sends (language 1.1: `ph from nd-ph-1 channel ph_sensor`)."""

    name: Ident
    node: Ident
    channel_key: Ident | None
    is_metric: bool
    span: Span
    unit: Ident | String | None = None  # `unit ratio` of a metric's binding (language 1.1)


@node
class ZoneDecl:
    uid: Ident
    title: String | None
    items: tuple  # Item | Binding
    span: Span


@node
class PhaseDecl:
    name: Ident
    day_from: Literal
    day_to: Literal | None
    targets: tuple  # TargetRange | Item
    span: Span


@node
class TargetRange:
    name: Ident
    low: Literal
    high: Literal
    span: Span
    night: tuple[Literal, Literal] | None = None  # `night LOW .. HIGH` (language 1.2)


@node
class RecipeDecl:
    name: Ident
    title: String | None
    phases: tuple[PhaseDecl, ...]
    span: Span


@node
class Setting:
    key: Ident
    value: object  # Literal | String | Ident
    span: Span
    night: Literal | None = None  # a recipe target's value at night: `name V night W` (language 1.2)


@node
class Section:
    key: Ident
    items: tuple  # Setting | Section | Window
    span: Span


@node
class Window:
    start: Literal
    end: Literal
    duty: Literal | None  # None in an `off` window
    period: Literal | None  # None in an `off` window
    span: Span
    max_off: Literal | None = None  # `... max_off 10m` (language 1.2)
    off: bool = False  # `window 20:00 to 06:00 off` (language 1.2)


@node
class SettingsDecl:
    """`settings { ... }` (language 1.2): at the top level, the settings a rule set declares with their
    defaults; in a zone, the zone's own values. Items as in a profile: Setting | Section | Window."""

    items: tuple
    span: Span


@node
class Light:
    """`light 06:00 to 20:00` in a zone or a site (language 1.2)."""

    start: Literal
    end: Literal
    span: Span


@node
class ProfileDecl:
    name: Ident
    items: tuple
    span: Span


@node
class AlertDecl:
    code: Ident
    scope: Scope | None
    items: tuple  # Item | AlertCond
    span: Span


@node
class AlertCond:
    """`when ...` (clear=False) or `clear when ...` (clear=True) inside an alert."""

    clear: bool
    cond: Cond
    span: Span


@node
class Deny:
    reason: String
    expr: Expr
    raises: Ident | None
    span: Span


@node
class GuardDecl:
    name: Ident
    scope: Scope
    denies: tuple[Deny, ...]
    span: Span


# ---- actions ---------------------------------------------------------------------
@node
class Action:
    """One action: `start pump_drain for 5m guarded by can_run_pump`, `raise X`...

    `verb` is the first keyword; `target` the channel, alert, event or None;
    `amount` the duration of a start or the volume of a dose; `names` the
    metrics of `record`.
    """

    verb: str
    target: Ident | None
    amount: Expr | None
    guards: tuple[Ident, ...]
    names: tuple[Ident, ...]
    span: Span
    then: tuple[DoseThen, ...] = ()  # the doses that follow a `dose` (language 1.2)


@node
class DoseThen:
    """`then dose_nutrient_b 5 ml after dosing.ab_wait` in a dose group (language 1.2)."""

    channel: Ident
    amount: Expr
    wait: Literal | Path
    span: Span


@node
class Actions:
    items: tuple[Action, ...]
    braced: bool
    span: Span


@node
class Trigger:
    """When a transition fires: a condition, a timeout, a schedule, or a schedule and a condition."""

    every: Expr | None
    at: Expr | None
    cond: Cond | None
    after: Literal | Path | None  # a Path: `after water_change.stabilize_time` (language 1.2)
    span: Span


@node
class Transition:
    target: Ident
    trigger: Trigger
    actions: Actions | None
    is_fail: bool  # written as `fail after D`
    span: Span


@node
class StateDecl:
    name: Ident
    enter: tuple[Actions, ...]
    exit: tuple[Actions, ...]
    transitions: tuple[Transition, ...]
    order: tuple  # items as written, for the formatter
    span: Span


@node
class MachineDecl:
    name: Ident
    initial: tuple[Ident, ...]
    states: tuple[StateDecl, ...]
    order: tuple
    span: Span


@node
class RuleDecl:
    name: Ident
    items: tuple  # Item(in) | Cond-wrapping Item | Actions | Item(repeat)
    span: Span


@node
class RuleWhen:
    cond: Cond
    span: Span


@node
class RuleDo:
    actions: Actions
    span: Span


# ---- tests -----------------------------------------------------------------------
@node
class TestDecl:
    name: String
    items: tuple
    span: Span


@node
class TestBlock:
    """`twin { ... }`, `given { ... }`, `telemetry { ... }` inside a test."""

    keyword: str
    items: tuple
    span: Span


@node
class Expectation:
    at: Literal
    kind: str  # state | alert | command | event
    negated: bool
    name: Ident
    fields: tuple[Item, ...]
    span: Span


@node
class Amend:
    """`replace alert x { ... }` / `extend machine m { ... }` (language 1.2): `decl` is the declaration as
    written after the word (MetricDecl, ChannelDecl, AlertDecl, GuardDecl, MachineDecl, RuleDecl,
    ProfileDecl or RecipeDecl)."""

    how: str  # replace | extend
    decl: object
    span: Span


@node
class File:
    path: str
    header: Header
    decls: tuple
    comments: tuple[Comment, ...]
    broken: tuple[str, ...] = ()  # names of declarations left out for syntax errors


#: the declarations `replace` and `extend` take (language 1.2) -> the keyword of their kind
AMENDABLE = {
    MetricDecl: "metric",
    ChannelDecl: "channel",
    AlertDecl: "alert",
    GuardDecl: "guard",
    MachineDecl: "machine",
    RuleDecl: "rule",
    ProfileDecl: "profile",
    RecipeDecl: "recipe",
}
