"""The persisted state of one zone: what the engine remembers between ticks.

It is plain data (JSON round-trip with `to_json` / `from_json`) so that the site
daemon can keep it in PostgreSQL and a dry run can snapshot it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

PENDING, ACTIVE, RESOLVED = "pending", "active", "resolved"

#: what a rule last asked of a channel
RELEASED, ON, OFF, DUTY = "released", "on", "off", "duty"


@dataclass(slots=True)
class ChannelState:
    """What the rules want of a channel and what the engine believes its node did."""

    desired: str = RELEASED
    desired_until: float | None = None  # `start X for D`: on until then
    guards: tuple = ()  # guards named by the action that set `desired`
    cause: str = ""  # which rule, state or transition set `desired`
    is_on: bool = False  # believed output: the load is powered
    since: float = 0.0  # believed output holds since
    commanded_until: float | None = None  # the last command's duration ends; the node then falls back
    last_cmd: str | None = None  # "on" | "off": what the last command asked
    pending: dict = field(default_factory=dict)  # cmd_id -> sent at (awaiting a terminal response)
    acked: list = field(default_factory=list)  # cmd_ids that got ACK but no terminal status yet
    intents: dict = field(default_factory=dict)  # cmd_id -> "on" | "off" of the switching commands above
    timeouts: int = 0  # commands in a row that got no response
    retry_at: float | None = None  # after timeouts, wait before asking the node again
    failures: list = field(default_factory=list)  # times of failed or timed-out commands
    denied_by: str | None = None  # guard that keeps it off now
    duty_off_since: float | None = None  # start of the current OFF stretch under duty control
    forced_on_until: float | None = None  # duty control cut an OFF short at max_recirc_off
    override_until: float | None = None  # NC: on despite a non-locking deny, max_recirc_off was reached
    reassert: bool = False  # what the node does is not known (it came back, a command got no answer): send again
    doses: list = field(default_factory=list)  # [[at, ml], ...] of the last day, for the dosing budget
    dose_checks: list = field(default_factory=list)  # [[due, value before], ...]: did a dose show?
    ineffective: int = 0  # doses in a row whose effect the sensor did not show


@dataclass(slots=True)
class AlertState:
    code: str
    channel: str | None
    status: str
    since: float  # pending since, or raised at
    clear_since: float | None = None  # the clear condition holds since
    details: dict = field(default_factory=dict)


@dataclass(slots=True)
class ZoneState:
    zone_uid: str
    created_at: float
    machines: dict = field(default_factory=dict)  # machine -> current state
    entered_at: dict = field(default_factory=dict)  # machine -> time the state was entered
    alerts: dict = field(default_factory=dict)  # (code, channel) -> AlertState (active or pending)
    channels: dict = field(default_factory=dict)  # channel -> ChannelState
    holds: dict = field(default_factory=dict)  # "machine/state/i" or "rule/name" -> condition holds since
    fired: dict = field(default_factory=dict)  # rule -> last time its actions ran
    solution_started_at: float | None = None
    solution: dict = field(default_factory=dict)  # metric -> value recorded at the last water change
    last_dose_at: float | None = None
    history: dict = field(default_factory=dict)  # metric -> [[ts, value], ...] for change()
    unchanged: dict = field(default_factory=dict)  # metric -> [value, since]
    seq: int = 0  # command counter: ids are deterministic
    plausible: dict = field(default_factory=dict)  # metric -> [previous, its ts, last trusted, jumped at]
    mixing_until: float | None = None  # a dose mixes: circulation stays on until then
    waiting: dict = field(default_factory=dict)  # machine -> [since, reason, last seen, target]: a change held
    nodes_heard: dict = field(default_factory=dict)  # node -> [newest reading ts, silent since or None]
    #: a dose group in flight (language 1.2): {"cause", "states", "guards", "steps": [[channel, ml, wait]],
    #: "due", "last_at"}; None: none
    dose_group: dict | None = None
    #: for `filled(...)`: channel -> [[ts, litres the level rose, machine states then], ...]
    fills: dict = field(default_factory=dict)
    fill_prev: list | None = None  # [ts, water level, machine states, channels on] at the last tick
    level_seen: float | None = None  # the water level was last known then
    phase: str | None = None  # the recipe phase the solution's recorded values (drift baselines) belong to

    # ---- JSON ------------------------------------------------------------------------
    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["alerts"] = [asdict(a) for a in self.alerts.values()]
        d["channels"] = {k: _channel_json(c) for k, c in self.channels.items()}
        return d

    @classmethod
    def from_json(cls, d: dict) -> ZoneState:
        d = dict(d)
        alerts = [AlertState(**_known(AlertState, a)) for a in d.pop("alerts", [])]
        channels = {
            k: ChannelState(**{**_known(ChannelState, c), "guards": tuple(c.get("guards", ()))})
            for k, c in d.pop("channels", {}).items()
        }
        st = cls(**_known(cls, d))
        st.alerts = {(a.code, a.channel): a for a in alerts}
        st.channels = channels
        return st


def _channel_json(c: ChannelState) -> dict:
    d = asdict(c)
    d["guards"] = list(c.guards)
    return d


def _known(cls, d: dict) -> dict:
    """The items of `d` that are fields of `cls`: a state saved by another version of the engine still loads."""
    return {k: v for k, v in d.items() if k in _FIELDS[cls]}


_FIELDS = {cls: frozenset(f.name for f in fields(cls)) for cls in (ChannelState, AlertState, ZoneState)}
