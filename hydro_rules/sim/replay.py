"""Replay: the engine over a recorded run of a zone, and where it disagrees with what was recorded.

The zone's program (`compiled(ruleset).program(zone)`, the daemon's and the dry
run's engine) starts fresh and evaluates at the instants the site daemon did:
each instant of its decision log, and its tick (1 s) from where it took the zone,
at the offset the logged ticks share; a dry run's recording names every instant
it evaluated, and the replay uses exactly those. At each instant the engine
reads the recorded samples stored up to then, or read by a logged decision
(newest per node, metric and channel), and the recorded
answers to its commands reach it as the daemon folds them in: the store's
status once its time has come (ACK, then DONE / failed / timeout, each at its
own time), so failures(...) and channel states follow the recording. Operator resets, node comebacks and
restarts in the decision log are applied when they happened.

Replayed commands are matched to recorded ones (channel, command, parameters,
time within a tolerance); the recorded answers of a matched command become the
answers to the replayed one. The recorded side is the daemon's decision log when
there is one (transitions, alerts, commands), else the engine's commands in the
store. Replay is open-loop: the readings are what the recorded commands made
them, so it stops at the first replayed command the recording does not show
(its effect would change the readings) and names it.
"""

from __future__ import annotations

import bisect
import math
import time
from dataclasses import dataclass, field

from ..engine.api import compiled, pinned_channels
from ..engine.state import DUTY
from ..lang import model as M
from ..messages import ACK, DONE, ERROR, FAILED, NO_EFFECT, TIMEOUT, CommandResponse
from .dryrun import Entry, ZoneRun, recirculated, response_words
from .dryrun import _record as record_decisions
from .recording import Command, Decision, Recording
from .times import iso, local_iso

#: the daemon's tick (daemon.config tick_s)
DAEMON_TICK_S = 1.0
#: commands whose effect changes what the nodes' sensors read
EFFECTS = frozenset({"set_relay", "run_pump", "dose", "set_pwm", "restart"})
#: decision-log kinds written by an evaluation (their instants are evaluation instants)
EVALUATED = frozenset({"transition", "command", "refusal", "held", "alert_raised", "alert_resolved", "event", "reset"})
#: decision-log kinds the replay compares
COMPARED = ("transition", "command", "alert_raised", "alert_resolved")
STOP_REASON = (
    "the recording does not show this command: its effect would change the readings, which an open-loop "
    "replay cannot know"
)
_TERMINAL = frozenset({"done", "failed", "timeout"})
#: params compared as durations (within the tolerance), not as amounts
_DURATIONS = frozenset({"duration_ms"})


@dataclass
class ReplayResult:
    zone_run: ZoneRun
    ruleset_version: str
    zone: str
    start: float  # the window [start, end)
    end: float
    began: float  # when the replayed zone started (the daemon taking the zone, or `start`)
    tick_s: float | None
    tolerance_s: float
    recorded_side: str  # "decision log" | "commands"
    disagreements: list[dict] = field(default_factory=list)
    stopped_at: dict | None = None
    warnings: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def agrees(self) -> bool:
        return not self.disagreements and self.stopped_at is None

    def to_json(self) -> dict:
        z = self.zone_run
        tz = z.zone.timezone
        return {
            "ruleset_version": self.ruleset_version,
            "zone": self.zone,
            "open_loop": True,
            "start": iso(self.start),
            "end": iso(self.end),
            "start_local": local_iso(self.start, tz),
            "end_local": local_iso(self.end, tz),
            "tick_seconds": self.tick_s,
            "tolerance_seconds": self.tolerance_s,
            "recorded_side": self.recorded_side,
            "recorded": self.counts,
            "agrees": self.agrees,
            "stopped_at": self.stopped_at,
            "disagreements": self.disagreements,
            "warnings": self.warnings,
            "zones": [
                {
                    "zone": z.zone.uid,
                    "summary": z.summary(),
                    "alerts": z.alerts,
                    "transitions": z.transitions,
                    "events": z.events,
                    "commands": z.commands,
                }
            ],
        }


def replay(
    ruleset: M.RuleSet,
    recording: Recording,
    zone_uid: str | None = None,
    *,
    start: float | None = None,
    end: float | None = None,
    tick_s: float | None = DAEMON_TICK_S,
    tolerance_s: float | None = None,
) -> ReplayResult:
    """Replay `recording` through `ruleset`'s program of the zone over [start, end) (default: the
    recording's window). `tick_s` is the recording daemon's tick; `tolerance_s` how far apart in time a
    replayed and a recorded decision may be and still be the same one (default two ticks).
    ValueError for a zone the rule set lacks or an empty window."""
    wall = time.perf_counter()
    uid = zone_uid or recording.zone
    zone = ruleset.zone(uid)
    if zone is None:
        raise ValueError(f"rule set {ruleset.ruleset_version} has no zone {uid!r}")
    span = recording.span()
    t0 = start if start is not None else recording.start if recording.start is not None else span[0] if span else 0.0
    t1 = end if end is not None else recording.end if recording.end is not None else span[1] + 1e-3 if span else t0
    if not t1 > t0:
        raise ValueError("the replay's window is empty: its end must come after its start")
    tol = tolerance_s if tolerance_s is not None else 2.0 * (tick_s or DAEMON_TICK_S)
    log = sorted((d for d in recording.decisions or () if t0 <= d.at < t1), key=lambda d: d.at)
    warnings: list[str] = []
    began = _began(log, t0, warnings if not recording.evaluations else [])
    prog = compiled(ruleset).program(uid)
    st = prog.new_state(began)
    zr = ZoneRun(zone, state=st, program=prog)
    rp = _Run(prog, st, zr, zone, tol, t1 - tol)

    by_id = {c.cmd_id: c for c in recording.commands}
    if log:
        recorded_side = "decision log"
        rec_commands = [_logged_command(d, by_id) for d in log if d.kind == "command"]
    else:
        recorded_side = "commands"
        rec_commands = [(c.ts, c.channel, c.cmd, c.params or {}, c) for c in recording.commands
                        if (c.source or "engine") == "engine" and began <= c.ts < t1]  # fmt: skip
    rp.recorded = _Pool(rec_commands, key=lambda x: (x[1], x[2]))
    no_status = sum(1 for x in rec_commands if x[4] is None)
    if no_status:
        warnings.append(
            f"{no_status} recorded command(s) have no status in the recording: no answer reaches the replay"
        )
    versions = sorted({d.ruleset_version for d in log if d.ruleset_version})
    for d in log:
        if d.kind == "ruleset":
            warnings.append(f"the daemon changed rule sets at {iso(d.at)} ({d.summary}); the replay runs "
                            f"{ruleset.ruleset_version} throughout")  # fmt: skip

    instants = _schedule(recording, log, began, t1, tick_s)
    actions = [d for d in log if d.kind in ("reset", "reassert", "recovery")]
    ordered = sorted(recording.samples, key=lambda s: s.seen_at)  # stable: one instant's samples keep their order
    seen = _seen_times(ordered, log)
    feed = sorted(zip(seen, range(len(ordered))))
    samples = [ordered[i] for _, i in feed]
    seen = [t for t, _ in feed]
    pinned = pinned_channels(zone)
    snap: dict = {}
    zr.snapshot = snap
    recirc = recirculated(ruleset, zone)
    off_any, off_duty = _Longest(), _Longest()
    si = ai = 0
    engine_s = 0.0
    last = began
    for t in instants:
        while si < len(samples) and seen[si] <= t:
            _take_sample(snap, samples[si], pinned)
            si += 1
        a = time.perf_counter()
        while ai < len(actions) and actions[ai].at <= t:
            rp.action(actions[ai])
            ai += 1
        rp.answers(t)
        d = prog.evaluate(st, snap, t)
        engine_s += time.perf_counter() - a
        rp.take(d, t)
        zr.ticks += 1
        last = t
        if recirc is not None and recirc in st.channels:
            rc = st.channels[recirc]
            off_any.see(not rc.is_on, t)
            off_duty.see(not rc.is_on and rc.desired == DUTY and rc.denied_by is None, t)
        if rp.stopped is not None:
            break
    off_any.see(False, last)
    off_duty.see(False, last)
    zr.recirc_off_any_s, zr.recirc_off_max_s = off_any.longest, off_duty.longest
    zr.final_states = dict(st.machines)
    zr.engine_s = engine_s

    stop_t = rp.stopped["t"] if rp.stopped is not None else None
    disagreements = list(rp.disagreements)
    cutoff = stop_t - tol if stop_t is not None else t1 - tol  # later, a match may lie past where the replay ended
    disagreements += _missing_commands(rp.recorded, cutoff, zone)
    if log:
        for kind in ("transition", "alert_raised", "alert_resolved"):
            recorded = [_logged(d) for d in log if d.kind == kind]
            disagreements += _compare(kind, rp.replayed[kind], recorded, cutoff, t1 - tol, tol, zone)
    disagreements.sort(key=lambda x: (x["at"], x["kind"]))
    stopped = None
    if rp.stopped is not None:
        stopped = {k: v for k, v in rp.stopped.items() if k != "t"}
    counts = {
        "samples": len(recording.samples),
        "commands": len(recording.commands),
        "decision_rows": len(log),
        "ruleset_versions": versions,
        "evaluations": zr.ticks,
    }
    return ReplayResult(
        zr, ruleset.ruleset_version, uid, t0, t1, began, None if recording.evaluations else tick_s, tol,
        recorded_side, disagreements, stopped, warnings, counts, time.perf_counter() - wall,
    )  # fmt: skip


# ---- the schedule -------------------------------------------------------------------------------
def _began(log: list[Decision], t0: float, warnings: list[str]) -> float:
    """When the replayed zone starts: the daemon taking it, when the window holds that, else the window's start."""
    first = next((d for d in log if d.kind in EVALUATED or d.kind in ("ownership", "recovery")), None)
    if first is None:
        return t0
    if first.kind == "recovery":
        warnings.append(
            f"the daemon took the zone at {iso(first.at)} from a saved state the recording does not hold; "
            "the replay starts it fresh there"
        )
        return first.at
    if first.kind == "ownership":
        return first.at
    warnings.append(
        "the window opens while the daemon ran: the replay starts the zone fresh at the window's start, the "
        "daemon did not (machine states, timers, history), so the first decisions may differ"
    )
    return t0


def _schedule(recording: Recording, log: list[Decision], began: float, end: float, tick_s) -> list[float]:
    """The evaluation instants in [began, end): the recording's own when it has them; else the daemon's:
    each instant of its decision log (ticks and fast-path evaluations that decided something) and its
    ticks from `began` (standing in for the evaluations that decided nothing and left no row).

    Not the samples' own instants: the store's `received_at` orders a burst of samples by the ingest's
    batches, not as the daemon's live feed heard them, so an evaluation there may see half a burst the
    daemon saw whole."""
    if recording.evaluations:
        return sorted({t for t in recording.evaluations if began <= t < end})
    logged = sorted({d.at for d in log if d.kind in EVALUATED and began <= d.at < end})
    out = set(logged)
    if tick_s:
        anchor = began + _tick_phase(logged, began, tick_s)
        near = _SAME_TICK * tick_s
        for k in range(int(math.ceil((end - anchor) / tick_s)) + 1):
            t = anchor + k * tick_s
            i = bisect.bisect_left(logged, t - near)
            if t < end and not (i < len(logged) and logged[i] <= t + near):  # a tick the log has not
                out.add(t)
    return sorted(out)


#: a logged instant this close to a tick of the grid (a fraction of a tick) is that tick
_SAME_TICK = 0.05
#: the spread of the daemon's tick instants (a database round trip before it reads the clock), and how far
#: ahead of the earliest of them the grid is put
_TICK_SPREAD, _TICK_LEAD = 0.02, 0.005


def _tick_phase(logged: list[float], began: float, tick_s: float) -> float:
    """Where within a tick the daemon's ticks fall, counted from `began`: the start of the densest cluster
    of the logged instants' offsets (ticks decide most things and share one offset, give or take a database
    round trip; fast-path evaluations fall where samples arrive), a little ahead of it. 0 without a logged
    instant.

    Ahead, because what an evaluation that decided nothing (and left no row) did is start holds and
    timers: started a little early in the replay, they still fall due by the logged tick that ended them;
    started a little late, they would fall due a whole tick after it."""
    offsets = sorted((t - began) % tick_s for t in logged)
    if not offsets:
        return 0.0
    ring = offsets + [x + tick_s for x in offsets]  # a cluster may straddle the tick's end
    width = _TICK_SPREAD * tick_s
    best, size, j = 0, 0, 0
    for i in range(len(offsets)):
        while j < len(ring) and ring[j] <= ring[i] + width:
            j += 1
        if j - i > size:
            best, size = i, j - i
    return (ring[best] - _TICK_LEAD * tick_s) % tick_s


def _seen_times(samples: list, log: list[Decision]) -> list[float]:
    """When the replayed engine may read each sample: when it was stored, or earlier when a logged decision
    shows the daemon read that very value before it was stored (its live feed hears a reading before the
    ingest has written it: the values a rule or guard read are in the row's `details["values"]`)."""
    seen = [s.seen_at for s in samples]
    by_metric: dict = {}
    for i, s in enumerate(samples):
        by_metric.setdefault(s.metric, []).append(i)
    for d in log:
        values = (d.details or {}).get("values") if d.kind in EVALUATED else None
        if not isinstance(values, dict):
            continue
        for name, v in values.items():
            idx = by_metric.get(name)
            if not idx or isinstance(v, bool) or not isinstance(v, int | float):
                continue
            for i in idx:  # in the order seen: the first one stored after the decision, with its value
                if d.at < seen[i] <= d.at + _EVIDENCE_S and round(samples[i].value, 4) == round(v, 4):
                    seen[i] = d.at
                    break
    return seen


#: how long after a logged decision a sample it read may have been stored
_EVIDENCE_S = 1.0


def _take_sample(snap: dict, s, pinned: dict) -> None:
    """The engine's telemetry as the daemon builds it (engine.api.telemetry_of): newest per (node, metric),
    a metric bound to one channel read from that channel only."""
    key = (s.node_uid, s.metric)
    want = pinned.get(key)
    if want is not None and M.fold_channel(s.channel or "") != want:
        return
    prev = snap.get(key)
    if prev is None or s.ts >= prev[1]:
        snap[key] = (s.value, s.ts)


# ---- one replay ------------------------------------------------------------------------------------
class _Run:
    """The replayed zone's bookkeeping: its commands linked to recorded ones, answers folded, what it decided."""

    def __init__(self, prog, st, zr: ZoneRun, zone: M.Zone, tol: float, edge: float) -> None:
        self.prog, self.st, self.zr, self.zone, self.tol = prog, st, zr, zone, tol
        self.edge = edge  # from here on a recorded match may lie past the window's end: no verdict
        self.recorded: _Pool | None = None
        self.links: dict[str, Command] = {}  # replayed cmd_id -> the recorded command whose answers it gets
        self.folded: dict[str, str] = {}  # replayed cmd_id -> the store status folded in last
        self.replayed: dict[str, list] = {k: [] for k in COMPARED}
        self.disagreements: list[dict] = []
        self.stopped: dict | None = None
        self.open_alerts: dict = {}
        self.sent: dict = {}

    def action(self, d: Decision) -> None:
        """An operator reset, a node coming back or a restart, as the daemon applied it."""
        details = d.details or {}
        if d.kind == "reset":
            dec = self.prog.reset(
                self.st, details.get("by") or "operator", details.get("reason") or "safety reset", d.at
            )
            self.zr.timeline.append(Entry(d.at, "event", d.summary))
        elif d.kind == "reassert":
            self.prog.node_back(self.st, details.get("node_uid") or "", d.at, details.get("why") or "came back")
            return
        else:
            dec = self.prog.recover(self.st, d.at, details.get("why") or "daemon restart")
        self.take(dec, d.at)

    def answers(self, now: float) -> None:
        """The recorded answers whose time has come, each status once, as the daemon folds them in."""
        for cmd_id, rc in list(self.links.items()):
            status = _visible(rc, now)
            if status is None or self.folded.get(cmd_id) == status:
                continue
            self.folded[cmd_id] = status
            if status in _TERMINAL:
                del self.links[cmd_id]
            resp = _response(cmd_id, rc, status, now)
            d = self.prog.apply_response(self.st, resp, now)
            if self.zr.outcomes.get(cmd_id) not in _TERMINAL_WORDS:
                self.zr.outcomes[cmd_id] = resp.status
            if resp.status in FAILED:
                cmd = self.sent.get(cmd_id)
                self.zr.timeline.append(Entry(now, "response", response_words(cmd.channel if cmd else None, resp)))
            self.take(d, now)

    def take(self, d, now: float) -> None:
        """An evaluation's decisions: into the run, commands matched against the recording."""
        if not d:
            return
        record_decisions(self.zr, d, self.open_alerts, self.sent)
        for t in d.transitions:
            self.replayed["transition"].append((t.at, (t.machine, t.source, t.target), t))
        for a in d.alerts:
            kind = "alert_raised" if a.change == "raised" else "alert_resolved"
            self.replayed[kind].append((a.at, (a.code, a.channel), a))
        for c in d.commands:
            if self.stopped is not None:
                break
            found = self.recorded.take(
                c.at, (c.channel, c.cmd), self.tol, lambda x, c=c: _same_params(x[3], c.params, self.tol)
            )
            if found is not None:
                if found[4] is not None:
                    self.links[c.cmd_id] = found[4]
                continue
            if c.at > self.edge:
                continue
            entry = _disagreement("command", "replay", c.at, self.zone, _command_fields(c.channel, c.cmd, c.params))
            entry["rule"] = c.rule
            self.disagreements.append(entry)
            if c.cmd in EFFECTS:
                self.stopped = {
                    "t": c.at,
                    "at": iso(c.at),
                    "at_local": local_iso(c.at, self.zone.timezone),
                    "reason": STOP_REASON,
                    "decision": {"cmd_id": c.cmd_id, "channel": c.channel, "node": c.node_uid, "cmd": c.cmd,
                                 "params": c.params, "rule": c.rule},
                }  # fmt: skip


_TERMINAL_WORDS = frozenset({DONE, NO_EFFECT, ERROR, TIMEOUT}) | FAILED


def _visible(rc: Command, now: float) -> str | None:
    """The store status of a recorded command the daemon could read at `now` (None: not yet answered)."""
    if rc.status in _TERMINAL and rc.status_ts is not None and rc.status_ts <= now:
        return rc.status
    if rc.ack_ts is not None and rc.ack_ts <= now and rc.status in ("ack", *_TERMINAL):
        return "ack"
    if rc.status == "ack" and rc.status_ts is not None and rc.status_ts <= now:
        return "ack"
    return None


def _response(cmd_id: str, rc: Command, status: str, now: float) -> CommandResponse:
    """A store status as the daemon's zone runner turns it into the engine's response (daemon.zone)."""
    node = rc.node_status
    if status == "ack":
        return CommandResponse(cmd_id, ACK, rc.ack_ts if rc.ack_ts is not None else now)
    if status == "done":
        word = node if node in (DONE, NO_EFFECT) else DONE
    elif status == "failed":
        word = node if node in FAILED else ERROR
    else:
        word = TIMEOUT
    at = rc.status_ts if rc.status_ts is not None else now
    return CommandResponse(cmd_id, word, at, rc.error_code, dict(rc.details or {}))


# ---- matching ----------------------------------------------------------------------------------------
class _Pool:
    """Recorded items by key, each matched at most once, nearest in time first."""

    def __init__(self, items, key) -> None:
        self.by_key: dict = {}
        for it in sorted(items, key=lambda x: x[0]):
            self.by_key.setdefault(key(it), []).append(it)
        self.times = {k: [it[0] for it in v] for k, v in self.by_key.items()}
        self.used: set[int] = set()

    def take(self, at: float, key, tol: float, ok=lambda x: True):
        items = self.by_key.get(key)
        if not items:
            return None
        times = self.times[key]
        best = None
        for i in range(bisect.bisect_left(times, at - tol - 1e-9), bisect.bisect_right(times, at + tol + 1e-9)):
            it = items[i]
            if id(it) in self.used or not ok(it):
                continue
            if best is None or abs(it[0] - at) < abs(best[0] - at):
                best = it
        if best is not None:
            self.used.add(id(best))
        return best

    def unmatched(self):
        return [it for items in self.by_key.values() for it in items if id(it) not in self.used]


def _same_params(recorded: dict, replayed: dict, tol: float) -> bool:
    """The same parameters: equal, numbers within 1 %, durations within the tolerance."""
    if set(recorded) != set(replayed):
        return False
    for k, a in recorded.items():
        b = replayed[k]
        if (
            isinstance(a, bool)
            or isinstance(b, bool)
            or not isinstance(a, int | float)
            or not isinstance(b, int | float)
        ):
            if a != b:
                return False
        elif k in _DURATIONS:
            if abs(a - b) > tol * 1000.0 + 1e-6:
                return False
        elif not math.isclose(a, b, rel_tol=0.01, abs_tol=1e-9):
            return False
    return True


def _logged_command(d: Decision, by_id: dict) -> tuple:
    """(at, channel, cmd, params, its store row or None) of a decision-log command row."""
    details = d.details or {}
    cmd = details.get("cmd")
    if cmd is None:  # the summary reads "<channel> <cmd> k=v ...  ← rule"
        parts = d.summary.split()
        cmd = parts[1] if len(parts) > 1 else ""
    return (d.at, d.channel, cmd, details.get("params") or {}, by_id.get(details.get("cmd_id")))


def _logged(d: Decision) -> tuple:
    """(at, key, the row) of a decision-log transition or alert row."""
    details = d.details or {}
    if d.kind == "transition":
        source, target = details.get("from"), details.get("to")
        if source is None or target is None:  # "A → B: reason"
            head = d.summary.split(":", 1)[0]
            source, _, target = (x.strip() for x in head.partition("→"))
        return (d.at, (details.get("machine"), source, target), d)
    return (d.at, (details.get("code"), d.channel), d)


def _compare(kind: str, replayed: list, recorded: list, cutoff: float, edge: float, tol: float, zone) -> list[dict]:
    """Disagreements of one kind: replayed items no recorded one matches, and recorded items the replay did
    not reproduce. Neither is judged within `tol` of where the replay ended (`cutoff`) or of the window's
    end (`edge`): its match may lie past it."""
    if kind == "transition":  # the log may lack the machine (a transition the rule set no longer has)
        pool = _Pool(recorded, key=lambda x: x[1][1:])
        keyof = lambda k: k[1:]  # noqa: E731
        ok = lambda k: lambda x: x[1][0] in (None, k[0])  # noqa: E731
    else:
        pool = _Pool(recorded, key=lambda x: x[1])
        keyof = lambda k: k  # noqa: E731
        ok = lambda k: lambda x: True  # noqa: E731
    out = []
    for at, key, _item in replayed:
        if pool.take(at, keyof(key), tol, ok(key)) is None and at <= edge:
            out.append(_disagreement(kind, "replay", at, zone, _fields(kind, key)))
    for at, key, _row in pool.unmatched():
        if at < cutoff:
            out.append(_disagreement(kind, "recorded", at, zone, _fields(kind, key)))
    return out


def _missing_commands(pool: _Pool, cutoff: float, zone: M.Zone) -> list[dict]:
    return [
        _disagreement("command", "recorded", at, zone, _command_fields(channel, cmd, params))
        for at, channel, cmd, params, _row in pool.unmatched()
        if at < cutoff
    ]


def _fields(kind: str, key: tuple) -> dict:
    if kind == "transition":
        machine, source, target = key
        return {"machine": machine, "from": source, "to": target,
                "text": f"{machine + ': ' if machine else ''}{source} → {target}"}  # fmt: skip
    code, channel = key
    change = "raised" if kind == "alert_raised" else "resolved"
    return {"code": code, "channel": channel, "text": f"{code}{' on ' + channel if channel else ''} {change}"}


def _command_fields(channel, cmd, params) -> dict:
    shown = " ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in (params or {}).items())
    return {"channel": channel, "cmd": cmd, "params": params, "text": f"{channel} {cmd} {shown}".rstrip()}


def _disagreement(kind: str, side: str, at: float, zone: M.Zone, fields: dict) -> dict:
    """side: "replay" (only the replay decided it) or "recorded" (only the recording shows it)."""
    return {"kind": kind, "side": side, "at": iso(at), "at_local": local_iso(at, zone.timezone), **fields}


class _Longest:
    """The longest stretch of evaluations during which something held (as the dry run counts OFF stretches)."""

    __slots__ = ("since", "longest")

    def __init__(self) -> None:
        self.since: float | None = None
        self.longest = 0.0

    def see(self, holds: bool, now: float) -> None:
        if holds:
            if self.since is None:
                self.since = now
        elif self.since is not None:
            self.longest = max(self.longest, now - self.since)
            self.since = None
