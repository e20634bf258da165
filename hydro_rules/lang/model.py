"""The checked rule set: names resolved, units converted, expressions typed.

This is what the engine compiles and what the service reads (vocabulary,
sites, zones and their node bindings). Every value is in its base unit
(see units.py); every element keeps the span it was written at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cached_property

from . import units as U
from .source import Span

node = dataclass(frozen=True, slots=True)

#: alerts the engine raises and resolves by itself when a rule set declares them: no rule needs to
#: raise or clear them
DOSE_INEFFECTIVE = "biz_dose_ineffective"
CHANGE_WAITING = "biz_water_change_waiting"
ENGINE_ALERTS = frozenset({DOSE_INEFFECTIVE, CHANGE_WAITING})


# ---- typed expressions -----------------------------------------------------------
@node
class Const:
    value: object
    dim: str
    span: Span


@node
class MetricRef:
    """The zone's latest reading of a metric (`ph`), or its `age` / `unchanged_for`."""

    metric: str
    attr: str  # value | age | unchanged_for
    dim: str
    span: Span


@node
class ChannelRef:
    """An attribute of a channel; channel None means the scope's current channel."""

    channel: str | None
    attr: str  # current | flow | flow_flag | on_for | off_for | timeouts | moves_level
    dim: str
    span: Span


@node
class ChannelIs:
    channel: str | None
    word: str  # on | off | locked
    span: Span
    dim: str = "yes/no"


@node
class SettingRef:
    """A profile setting such as `water_cycle.water_change.interval`."""

    path: str
    dim: str
    span: Span


@node
class TargetRef:
    """The recipe phase's target: `target.ph.max` (bound min/max) or `target.ideal_change_interval`."""

    name: str
    bound: str | None
    dim: str
    span: Span


@node
class ZoneRef:
    """Zone facts: solution.age, solution.<metric>, last_dose.age, recipe.day, time_of_day."""

    name: str
    dim: str
    span: Span


@node
class AlertIs:
    code: str
    word: str  # active | resolved
    span: Span
    dim: str = "yes/no"


@node
class MetricIs:
    """`ph is stale`, `ec is frozen`, `ec is implausible` (language 1.1): the status of a metric's
    latest reading, which the engine tells (`ZoneProgram.metric_status`)."""

    metric: str
    word: str  # stale | frozen | implausible
    span: Span
    dim: str = "yes/no"


@node
class Known:
    operand: object
    known: bool
    span: Span
    dim: str = "yes/no"


@node
class Func:
    name: str  # change | drift | failures | abs | min | max
    args: tuple
    dim: str
    span: Span


@node
class Arith:
    op: str
    left: object
    right: object
    dim: str
    span: Span


@node
class Neg:
    operand: object
    dim: str
    span: Span


@node
class Cmp:
    op: str
    left: object
    right: object
    span: Span
    dim: str = "yes/no"


@node
class Logic:
    op: str  # and | or
    items: tuple
    span: Span
    dim: str = "yes/no"


@node
class Not:
    operand: object
    span: Span
    dim: str = "yes/no"


@node
class Condition:
    expr: object
    hold_s: float  # the hold; when written as a setting, that setting's rule-set default
    span: Span
    text: str  # as written, for explanations
    #: the setting the hold was written as (`for dosing.hold`, language 1.2): each zone reads its own
    hold_setting: str | None = None


# ---- declarations -------------------------------------------------------------------
@node
class Metric:
    name: str
    unit: str
    dim: str
    low: float
    high: float
    stale_s: float
    aliases: tuple[str, ...]
    text: str
    span: Span
    # plausibility (language 1.1); a reading outside `low`..`high` is always implausible
    implausible_at_limits: bool = False  # a reading at or beyond a range limit (<= low or >= high)
    implausible_zero: bool = False  # a reading of exactly 0 (an EC probe in air)
    #: (amount in the base unit, per seconds): a change larger than amount * max(1, dt / per)
    #: between two consecutive readings is implausible
    max_step: tuple[float, float] | None = None
    frozen_s: float | None = None  # the same exact value for this long: the sensor is frozen
    #: the node channels whose readings are this metric, whatever metric type they name (language 1.1)
    channels: tuple[str, ...] = ()
    #: a unit a node may send (lower case) -> the factor to this metric's unit (language 1.1)
    conversions: dict = field(default_factory=dict, hash=False)


@node
class Channel:
    name: str
    kind: str  # pump | valve | doser | sensor
    fail_safe: str | None  # NC | NO
    current: str | None
    flow: str | None
    measures: str | None
    moves_level: bool
    text: str
    span: Span
    #: a doser's effect (language 1.1): (metric, +1 raises / -1 lowers, the smallest change that
    #: shows a dose worked in the metric's base unit, or None for 0.1 % of the metric's range span)
    affects: tuple[str, int, float | None] | None = None
    #: the 0/1 metric that tells whether water flows past this pump (language 1.1)
    flow_flag: str | None = None


@node
class Window:
    start_s: float
    end_s: float
    duty: float  # 0..1
    period_s: float
    span: Span
    #: the longest OFF stretch allowed in this window (`max_off 10m`, 1.2); None: recirc.max_recirc_off
    max_off_s: float | None = None
    #: an `off` window (1.2): the pump is held off from start to end, a bounded OFF of that length
    off: bool = False

    def contains(self, tod_s: float) -> bool:
        if self.start_s <= self.end_s:
            return self.start_s <= tod_s < self.end_s
        return tod_s >= self.start_s or tod_s < self.end_s


@node
class Profile:
    name: str
    settings: dict  # dotted path -> value in base units
    windows: tuple[Window, ...]
    span: Span


@node
class Phase:
    name: str
    day_from: int
    day_to: int | None
    targets: dict  # metric -> (low, high)
    values: dict  # name -> value
    span: Span
    #: metric -> (low, high) while the zone's lights are off (`night 5.9 .. 6.3`, 1.2)
    night_targets: dict = field(default_factory=dict)
    night_values: dict = field(default_factory=dict)  # name -> value at night
    #: full dotted setting path -> value in base units, over the zone's while this phase lasts (1.2)
    settings: dict = field(default_factory=dict)


@node
class Recipe:
    name: str
    title: str
    phases: tuple[Phase, ...]
    span: Span

    def phase_on(self, day: int) -> Phase | None:
        for p in self.phases:
            if p.day_from <= day and (p.day_to is None or day <= p.day_to):
                return p
        return None


@node
class Binding:
    channel: str
    node_uid: str
    channel_key: str
    span: Span


@node
class Zone:
    uid: str
    title: str
    site_uid: str
    greenhouse_uid: str
    profile: str
    recipe: str
    planted: date | None
    reservoir_l: float
    channels: dict  # channel name -> Binding
    metric_nodes: dict  # metric -> node uid
    timezone: str
    span: Span
    #: nodes of this zone declared able to end an OFF by themselves (`node UID { bounded_off yes }`)
    bounded_off_nodes: frozenset[str] = frozenset()
    #: metric -> the channel key of its node that carries it (`ph from nd-1 channel ph_sensor`, 1.1)
    metric_channels: dict = field(default_factory=dict)
    #: metric -> the unit its node sends when a reading names none (`... unit ratio`, 1.1)
    metric_units: dict = field(default_factory=dict)
    #: full dotted setting path -> value in base units, over the profile's (`settings { }`, 1.2)
    settings: dict = field(default_factory=dict)
    #: recirculation windows of the zone's own settings, in place of the profile's (1.2); None: the profile's
    windows: tuple | None = None
    #: (lights on, lights off) in local seconds of the day: the zone's, else its site's (`light 06:00 to 20:00`)
    light: tuple[float, float] | None = None

    @property
    def nodes(self) -> tuple[str, ...]:
        seen = dict.fromkeys([b.node_uid for b in self.channels.values()] + list(self.metric_nodes.values()))
        return tuple(seen)


@node
class Greenhouse:
    uid: str
    title: str
    zones: tuple[Zone, ...]
    span: Span


@node
class Site:
    uid: str
    title: str
    timezone: str
    greenhouses: tuple[Greenhouse, ...]
    span: Span
    light: tuple[float, float] | None = None  # (lights on, lights off), local seconds of the day (1.2)

    @property
    def zones(self) -> tuple[Zone, ...]:
        return tuple(z for g in self.greenhouses for z in g.zones)


@node
class Scope:
    """The channels an alert or guard applies to: every channel of a kind, or named ones."""

    kind: str | None
    channels: tuple[str, ...]
    var: str  # the name that stands for the current channel in expressions

    def covers(self, channel: Channel) -> bool:
        return channel.kind == self.kind if self.kind else channel.name in self.channels


@node
class Alert:
    code: str
    source: str
    severity: str
    text: str
    scope: Scope | None
    when: tuple[Condition, ...]
    clear: Condition | None
    clear_on_reset: bool
    on_error: tuple[str, ...]
    locks: bool
    span: Span


@node
class Deny:
    reason: str
    expr: object
    raises: str | None
    text: str
    span: Span


@node
class Guard:
    name: str
    scope: Scope
    denies: tuple[Deny, ...]
    span: Span


@node
class Action:
    verb: str  # start stop recirculate release open close dose raise resolve event record reset_solution
    target: str | None
    amount: object | None  # typed expr: duration of a start, volume of a dose
    guards: tuple[str, ...]
    names: tuple[str, ...]
    span: Span
    #: doses that follow a `dose` (1.2, `then CHANNEL AMOUNT after WAIT`): (channel, amount expr,
    #: wait in seconds, the setting the wait was written as or None), in order
    then: tuple = ()


@node
class Transition:
    source: str
    target: str
    cond: Condition | None
    after_s: float | None
    every: object | None  # typed expr, duration
    at: object | None  # typed expr, time of day
    actions: tuple[Action, ...]
    is_fail: bool
    span: Span
    after_setting: str | None = None  # the setting `after`/`fail after` was written as (1.2)

    def describe(self) -> str:
        """Its trigger in short words: `water_level <= levels.empty for 30s`, `timeout 30m`."""
        parts = []
        if self.every is not None:
            parts.append(f"every {_short(self.every)} at {_short(self.at)}")
        if self.cond is not None:
            hold = f" for {U.format_duration(self.cond.hold_s)}" if self.cond.hold_s else ""
            parts.append(self.cond.text + hold)
        if self.after_s is not None:
            parts.append(("timeout " if self.is_fail else "after ") + U.format_duration(self.after_s))
        return " and ".join(parts)


def _short(e) -> str:
    """A schedule's `every` or `at` in words: a setting as rules write it, or a constant."""
    if isinstance(e, SettingRef):
        return e.path.replace("water_cycle.", "")
    if isinstance(e, Const):
        return U.describe(float(e.value), e.dim)
    return "…"


@node
class State:
    name: str
    machine: str
    enter: tuple[Action, ...]
    exit: tuple[Action, ...]
    transitions: tuple[Transition, ...]
    span: Span


@node
class Machine:
    name: str
    initial: str
    states: dict  # name -> State
    span: Span


@node
class Rule:
    name: str
    states: tuple[str, ...]
    cond: Condition
    actions: tuple[Action, ...]
    repeat_s: float | None
    span: Span
    repeat_setting: str | None = None  # the setting `repeat every` was written as (1.2)


def _builtin_schema() -> dict:
    from .settings import SCHEMA

    return SCHEMA


def fold_channel(key: str) -> str:
    """A node's channel key as readings are matched by it: trimmed, in lower case (older
    firmware sends channel ids upper-case)."""
    return key.strip().lower()


def unit_factor(m: Metric, unit: str | None) -> tuple[float | None, str | None]:
    """(the factor that brings a reading of `m` in `unit` to `m`'s unit, why it is not 1): 1 for no
    unit or `m`'s own (in any spelling), a declared `convert`, a language unit of the same dimension
    (uS/cm to mS/cm); None for any other unit."""
    if unit is None or not unit.strip() or U.same_unit(unit, m.unit):
        return 1.0, None
    key = U.unit_key(unit)
    factor = next((f for declared, f in m.conversions.items() if U.unit_key(declared) == key), None)
    if factor is None:
        factor = U.factor_between(unit, m.unit)
    if factor is None:
        return None, f"{m.name} is in {m.unit or 'no unit'} and converts no {unit}"
    return factor, f"{unit} converted by {factor:g}"


@node
class Resolved:
    """What a node's reading is: the metric, and the factor that brings its value to the metric's
    unit (None: the reading names a unit the metric neither has nor converts)."""

    metric: str
    factor: float | None
    note: str | None = None  # why, when it is not plain: the channel decided, a unit was converted


@dataclass
class RuleSet:
    name: str
    version: str
    content_hash: str
    metrics: dict = field(default_factory=dict)
    aliases: dict = field(default_factory=dict)  # any spelling a node may send -> metric name
    channels: dict = field(default_factory=dict)
    sites: list = field(default_factory=list)
    recipes: dict = field(default_factory=dict)
    profiles: dict = field(default_factory=dict)
    alerts: dict = field(default_factory=dict)
    guards: dict = field(default_factory=dict)
    machines: dict = field(default_factory=dict)
    rules: dict = field(default_factory=dict)
    files: list = field(default_factory=list)
    #: every setting rules and profiles may use: the built-in SCHEMA and those a `settings` block
    #: declares (1.2), dotted path -> (dimension, default, allowed names or None)
    settings_schema: dict = field(default_factory=dict)
    #: definitions a site replaced or extended (1.2): (how: replace|extend, kind, name, new span, old span)
    replaced: list = field(default_factory=list)

    def zone_settings(self, zone: Zone, phase: Phase | None = None) -> dict:
        """Every setting's value in a zone: defaults, then its profile, its own, its recipe phase's."""
        out = {path: d for path, (_, d, _) in (self.settings_schema or _builtin_schema()).items()}
        profile = self.profiles.get(zone.profile)
        if profile is not None:
            out.update(profile.settings)
        out.update(zone.settings)
        if phase is not None:
            out.update(phase.settings)
        return out

    def zone_windows(self, zone: Zone) -> tuple:
        """The recirculation windows that apply in a zone: its own, else its profile's."""
        if zone.windows is not None:
            return zone.windows
        profile = self.profiles.get(zone.profile)
        return profile.windows if profile is not None else ()

    @property
    def ruleset_version(self) -> str:
        """name@version+hash: stamped on every command, alert and event."""
        return f"{self.name}@{self.version}+{self.content_hash[:12]}"

    @property
    def zones(self) -> list[Zone]:
        return [z for s in self.sites for z in s.zones]

    def zone(self, uid: str) -> Zone | None:
        return next((z for z in self.zones if z.uid == uid), None)

    def normalize_metric(self, raw: str) -> str | None:
        """The canonical metric name of what a node sent, or None when unknown (§7.3)."""
        key = raw.strip()
        return self.aliases.get(key) or self.aliases.get(key.lower()) or self.aliases.get(key.upper())

    @cached_property
    def reading_channels(self) -> dict[str, str]:
        """A declared channel key, lower case -> its metric."""
        return {fold_channel(key): name for name, m in self.metrics.items() for key in m.channels}

    def resolve_reading(self, metric_type: str, channel: str | None, unit: str | None = None) -> Resolved | None:
        """What a reading of `metric_type` from `channel`, in `unit`, is; None when the vocabulary
        knows neither the channel nor the metric type.

        A channel a metric declares (`channel solution_temp_c`, any case) decides the metric,
        whatever the type says; otherwise a channel key that names another metric of the same
        unit does (`temp_water` for TEMPERATURE); otherwise the type does."""
        note = None
        metric = self.reading_channels.get(fold_channel(channel)) if channel else None
        if metric is not None:
            if self.normalize_metric(metric_type) != metric:
                note = f"channel {channel} carries {metric}"
        else:
            metric = self.normalize_metric(metric_type)
            if metric is None:
                return None
            named = self.normalize_metric(channel) if channel else None
            if named is not None and named != metric and self.metrics[named].unit == self.metrics[metric].unit:
                metric, note = named, f"channel {channel} names {named}"
        factor, why = unit_factor(self.metrics[metric], unit)
        return Resolved(metric, factor, "; ".join(w for w in (note, why) if w) or None)

    def state(self, name: str) -> State | None:
        for m in self.machines.values():
            if name in m.states:
                return m.states[name]
        return None
