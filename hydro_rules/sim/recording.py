"""A zone's recorded run, the input of a replay (`sim.replay`), and its plain CSV form.

A Recording holds what a run of one zone left behind: the telemetry samples the
engine could read (with their node, metric and channel), the commands with how
they ended (the store's final status and its time, the ACK's time, the node's own
word), and, when a site daemon ran, its decision log. It comes from the database
(`store.recording` reads it; `from_store` builds it), from a CSV file
(`read_csv`), or from a dry run (`record_dry_run`: what the twin published, its
answers, the decisions and every instant the run evaluated).

The CSV (what `hydro-rules export` writes, docs/replay.md) is one file with a
header and one row per item; the `kind` column says which: `sample`, `command`,
`decision` or `evaluation`. Times are ISO 8601 in UTC (`2026-01-01T00:00:05.25Z`;
an offset is accepted when reading). Columns a kind does not use stay empty;
`params` and `details` are JSON. A malformed file raises RecordingError naming
the file and line.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from ..messages import ACK, DONE, FAILED, NO_EFFECT, TIMEOUT

COLUMNS = (
    "kind",
    "time",
    "zone",
    "node",
    "channel",
    "metric",
    "value",
    "received_time",
    "cmd_id",
    "cmd",
    "params",
    "status",
    "status_time",
    "ack_time",
    "node_status",
    "error_code",
    "source",
    "decision",
    "rule",
    "summary",
    "details",
    "ruleset_version",
)
KINDS = ("sample", "command", "decision", "evaluation")
#: the store's command statuses (store.commands)
STATUSES = frozenset({"queued", "sent", "ack", "done", "failed", "timeout"})
_REQUIRED = {
    "sample": ("node", "metric", "value"),
    "command": ("cmd_id", "node", "cmd", "status"),
    "decision": ("decision", "summary"),
    "evaluation": (),
}


class Sample(NamedTuple):
    """One stored telemetry sample, stamped `ts` by its node and stored at `received_ts` (when known): the
    engine can read it from the later of the two on."""

    ts: float
    node_uid: str
    metric: str
    value: float
    channel: str | None = None
    received_ts: float | None = None

    @property
    def seen_at(self) -> float:
        """When the site could first read it: stamped, and arrived."""
        return self.ts if self.received_ts is None or self.received_ts < self.ts else self.received_ts


class Command(NamedTuple):
    """A command as the store keeps it: when it was decided (`ts`), and how it ended."""

    cmd_id: str
    ts: float
    channel: str | None
    node_uid: str
    cmd: str
    params: dict
    status: str  # queued | sent | ack | done | failed | timeout
    status_ts: float | None  # when it reached `status`
    error_code: str | None = None
    ack_ts: float | None = None  # its ACK, when it had one
    node_status: str | None = None  # the node's own word: DONE, NO_EFFECT, ERROR, BUSY, TIMEOUT, ...
    source: str = "engine"  # engine | api | deadman | ...: only the engine's are the rules' decisions
    details: dict | None = None  # what the node said with its answer (e.g. the current it measured)


class Decision(NamedTuple):
    """One row of the daemon's decision log (store.decisions)."""

    at: float
    kind: str  # transition | command | refusal | held | alert_raised | alert_resolved | event | reset | ...
    summary: str
    rule: str | None = None
    channel: str | None = None
    details: dict | None = None
    ruleset_version: str | None = None


@dataclass
class Recording:
    zone: str
    samples: list[Sample] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    decisions: list[Decision] | None = None  # the daemon's decision log; None (or empty): none was kept
    evaluations: list[float] | None = None  # every instant the run evaluated, when known (a dry run)
    start: float | None = None  # the window it covers, [start, end), when known
    end: float | None = None

    def span(self) -> tuple[float, float] | None:
        """(first, last) instant of anything recorded; None when empty."""
        times = [s.ts for s in self.samples] + [c.ts for c in self.commands]
        times += [d.at for d in self.decisions or ()] + list(self.evaluations or ())
        return (min(times), max(times)) if times else None


class RecordingError(ValueError):
    """A recording that cannot be read: the message names the file and line."""


# ---- times --------------------------------------------------------------------------------------
def iso_time(t: float) -> str:
    """ISO 8601 in UTC, with microseconds only when there are some: `2026-01-01T00:00:05.25Z`."""
    dt = datetime.fromtimestamp(t, UTC)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_iso(text: str) -> float:
    """Epoch seconds of an ISO 8601 time (UTC unless an offset is given). ValueError when it is not one."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


# ---- CSV ----------------------------------------------------------------------------------------
def write_csv(rec: Recording, path) -> None:
    """Write the recording as CSV to `path` (or an open text file), every row in time order (samples,
    commands, decisions, evaluations at one instant)."""
    rows = [(s.ts, 0, _sample_row(rec.zone, s)) for s in rec.samples]
    rows += [(c.ts, 1, _command_row(rec.zone, c)) for c in rec.commands]
    rows += [(d.at, 2, _decision_row(rec.zone, d)) for d in rec.decisions or ()]
    rows += [(t, 3, {"kind": "evaluation", "time": iso_time(t), "zone": rec.zone}) for t in rec.evaluations or ()]
    rows.sort(key=lambda r: (r[0], r[1]))  # stable: each kind keeps its own order
    if hasattr(path, "write"):
        _write(path, rows)
        return
    with open(path, "w", newline="", encoding="utf-8") as f:
        _write(f, rows)


def _write(f, rows) -> None:
    w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for _, _, row in rows:
        w.writerow(row)


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _opt_time(t: float | None) -> str:
    return "" if t is None else iso_time(t)


def _sample_row(zone: str, s: Sample) -> dict:
    return {
        "kind": "sample",
        "time": iso_time(s.ts),
        "zone": zone,
        "node": s.node_uid,
        "channel": s.channel or "",
        "metric": s.metric,
        "value": repr(float(s.value)),
        "received_time": _opt_time(s.received_ts),
    }


def _command_row(zone: str, c: Command) -> dict:
    return {
        "kind": "command",
        "time": iso_time(c.ts),
        "zone": zone,
        "node": c.node_uid,
        "channel": c.channel or "",
        "cmd_id": c.cmd_id,
        "cmd": c.cmd,
        "params": _json(c.params or {}),
        "status": c.status,
        "status_time": _opt_time(c.status_ts),
        "ack_time": _opt_time(c.ack_ts),
        "node_status": c.node_status or "",
        "error_code": c.error_code or "",
        "source": c.source or "",
        "details": _json(c.details) if c.details else "",
    }


def _decision_row(zone: str, d: Decision) -> dict:
    return {
        "kind": "decision",
        "time": iso_time(d.at),
        "zone": zone,
        "channel": d.channel or "",
        "decision": d.kind,
        "rule": d.rule or "",
        "summary": d.summary,
        "details": _json(d.details or {}),
        "ruleset_version": d.ruleset_version or "",
    }


def read_csv(path: str | Path) -> Recording:
    """The recording in a CSV file; RecordingError (file:line: what is wrong) when it is malformed."""
    name = str(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return _read(csv.reader(f), name)
    except OSError as e:
        raise RecordingError(f"{name}: cannot read it: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise RecordingError(f"{name}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise RecordingError(f"{name}: not CSV: {e}") from None


def _read(reader, name: str) -> Recording:
    header = next(reader, None)
    if header is None:
        raise RecordingError(f"{name}:1: empty file; expected a header: {','.join(COLUMNS)}")
    cols = [h.strip() for h in header]
    missing = [c for c in ("kind", "time") if c not in cols]
    if missing:
        raise RecordingError(f"{name}:1: the header lacks {', '.join(missing)} (expected {','.join(COLUMNS)})")
    index = {c: i for i, c in enumerate(cols)}
    rec = Recording(zone="")
    decisions: list[Decision] = []
    evaluations: list[float] = []
    for fields in reader:
        line = reader.line_num
        if not any(x.strip() for x in fields):
            continue
        if len(fields) > len(cols):
            raise RecordingError(f"{name}:{line}: {len(fields)} fields, the header has {len(cols)}")
        row = {c: (fields[i].strip() if i < len(fields) else "") for c, i in index.items()}
        kind = row["kind"]
        if kind not in KINDS:
            raise RecordingError(f"{name}:{line}: kind {kind!r}: expected one of {', '.join(KINDS)}")
        absent = [c for c in _REQUIRED[kind] if not row.get(c)]
        if absent:
            raise RecordingError(f"{name}:{line}: a {kind} row needs {', '.join(absent)}")
        zone = row.get("zone", "")
        if zone:
            if rec.zone and zone != rec.zone:
                raise RecordingError(f"{name}:{line}: zone {zone!r}, but earlier rows are of zone {rec.zone!r}")
            rec.zone = zone
        at = _time(row["time"], "time", name, line)
        if kind == "sample":
            received = row.get("received_time")
            rec.samples.append(
                Sample(
                    at,
                    row["node"],
                    row["metric"],
                    _number(row["value"], name, line),
                    row.get("channel") or None,
                    _time(received, "received_time", name, line) if received else None,
                )
            )
        elif kind == "command":
            status = row["status"]
            if status not in STATUSES:
                raise RecordingError(f"{name}:{line}: status {status!r}: expected one of {', '.join(sorted(STATUSES))}")
            rec.commands.append(
                Command(
                    row["cmd_id"],
                    at,
                    row.get("channel") or None,
                    row["node"],
                    row["cmd"],
                    _object(row.get("params", ""), "params", name, line),
                    status,
                    _time(row["status_time"], "status_time", name, line) if row.get("status_time") else None,
                    row.get("error_code") or None,
                    _time(row["ack_time"], "ack_time", name, line) if row.get("ack_time") else None,
                    row.get("node_status") or None,
                    row.get("source") or "engine",
                    _object(row.get("details", ""), "details", name, line) or None,
                )
            )
        elif kind == "decision":
            decisions.append(
                Decision(
                    at,
                    row["decision"],
                    row["summary"],
                    row.get("rule") or None,
                    row.get("channel") or None,
                    _object(row.get("details", ""), "details", name, line),
                    row.get("ruleset_version") or None,
                )
            )
        else:
            evaluations.append(at)
    if not rec.zone:
        raise RecordingError(f"{name}: no row names its zone (the `zone` column)")
    rec.decisions = decisions or None
    rec.evaluations = evaluations or None
    return rec


def _time(text: str, column: str, name: str, line: int) -> float:
    try:
        return parse_iso(text)
    except ValueError:
        raise RecordingError(
            f"{name}:{line}: {column} {text!r} is not an ISO 8601 time (e.g. 2026-01-01T00:00:05Z)"
        ) from None


def _number(text: str, name: str, line: int) -> float:
    try:
        v = float(text)
    except ValueError:
        raise RecordingError(f"{name}:{line}: value {text!r} is not a number") from None
    if not math.isfinite(v):
        raise RecordingError(f"{name}:{line}: value {text!r} is not a finite number")
    return v


def _object(text: str, column: str, name: str, line: int) -> dict:
    if not text:
        return {}
    try:
        v = json.loads(text)
    except ValueError as e:
        raise RecordingError(f"{name}:{line}: {column} is not JSON ({e.msg} at column {e.pos + 1})") from None
    if not isinstance(v, dict):
        raise RecordingError(f"{name}:{line}: {column} must be a JSON object, not {type(v).__name__}")
    return v


# ---- from the database ------------------------------------------------------------------------------
def from_store(zone: str, found: dict, start: float, end: float) -> Recording:
    """A Recording of what `store.recording.zone_window` read (rows with datetimes)."""

    def ts(dt) -> float | None:
        return None if dt is None else dt.timestamp()

    samples = [
        Sample(ts(r["ts"]), r["node_uid"], r["metric"], float(r["value"]), r["channel"], ts(r.get("received_at")))
        for r in found["samples"]
    ]
    commands = [
        Command(
            r["cmd_id"],
            ts(r["created_at"]),
            r["channel"],
            r["node_uid"],
            r["cmd"],
            dict(r["params"] or {}),
            r["status"],
            ts(r["status_at"]),
            r["error_code"],
            ts(r["ack_at"]),
            r["node_status"],
            r["source"] or "engine",
            dict(r["details"]) if r.get("details") else None,
        )
        for r in found["commands"]
    ]
    decisions = [
        Decision(
            ts(r["at"]),
            r["kind"],
            r["summary"],
            r["rule"],
            r["channel"],
            dict(r["details"] or {}),
            r["ruleset_version"],
        )
        for r in found["decisions"]
    ]
    return Recording(zone, samples, commands, decisions or None, None, start, end)


# ---- from a dry run -----------------------------------------------------------------------------------
#: the node's terminal words -> the store's status (as store.commands.FROM_NODE maps them)
_STORE_STATUS = {DONE: "done", NO_EFFECT: "done"}


def record_dry_run(ruleset, zone_uid: str, **run_args):
    """(DryRun, Recording) of one zone's dry run (`sim.dryrun.run` with `run_args`): the readings the engine
    read, each when it read them first; every command with the twin's answers (ACK and the first terminal
    one, each at its own time) or the timeout sweep's; its decisions as a decision log; and every instant
    it evaluated. What a site would have stored, had the twin been its plant."""
    from ..engine.api import pinned_channels
    from .dryrun import run

    zone = ruleset.zone(zone_uid)
    if zone is None:
        raise KeyError(f"no zone {zone_uid!r}")
    pinned = pinned_channels(zone)
    samples: list[Sample] = []
    evaluations: list[float] = []
    seen: dict = {}
    answers: dict = {}  # cmd_id -> [ack ts, terminal CommandResponse]
    watching: list = []

    def before_tick(zr, now):
        if not watching:  # every answer the engine gets, with its own time (before any command is sent)
            prog = zr.program
            fold = prog.apply_response

            def heard(st, r, at):
                a = answers.setdefault(r.cmd_id, [None, None])
                if r.status == ACK:
                    if a[0] is None:
                        a[0] = r.ts
                elif a[1] is None:
                    a[1] = r
                return fold(st, r, at)

            prog.apply_response = heard
            watching.append(prog)
        evaluations.append(now)
        for key, (value, t) in zr.snapshot.items():
            if seen.get(key) != (value, t):
                seen[key] = (value, t)
                samples.append(Sample(t, key[0], key[1], value, pinned.get(key)))

    result = run(ruleset, [zone_uid], before_tick=before_tick, **run_args)
    zr = result.zones[0]
    commands = []
    for c in zr.commands:
        ack, final = answers.get(c["cmd_id"], (None, None))
        if final is None:
            status, at, node, code = ("ack" if ack is not None else "sent"), ack, None, None
        elif final.status == TIMEOUT:  # the service's sweep (sim.timeouts)
            status, at, node, code = "timeout", final.ts, None, None
        else:
            status = _STORE_STATUS.get(final.status, "failed" if final.status in FAILED else "done")
            at, node, code = final.ts, final.status, final.error_code
        details = dict(final.details) if final is not None and final.details else None
        commands.append(
            Command(c["cmd_id"], parse_iso(c["at"]), c["channel"], c["node"], c["cmd"], dict(c["params"]), status, at,
                    code, ack, node, "engine", details)
        )  # fmt: skip
    decisions = dry_run_decisions(zr)
    rec = Recording(zone_uid, samples, commands, decisions, evaluations, result.start, result.end + 1e-3)
    return result, rec


def dry_run_decisions(zr) -> list[Decision]:
    """A dry-run zone's transitions, alerts and commands as decision-log rows (the daemon's kinds and details)."""
    out = []
    for t in zr.transitions:
        details = {"machine": t["machine"], "from": t["from"], "to": t["to"]}
        out.append(Decision(parse_iso(t["at"]), "transition", f"{t['from']} → {t['to']}: {t['reason']}", None, None,
                            details))  # fmt: skip
    for a in zr.alerts:
        details = {"code": a["code"], "severity": a["severity"]}
        out.append(
            Decision(parse_iso(a["raised_at"]), "alert_raised", f"{a['code']} raised", None, a["channel"], details)
        )
        if a["resolved_at"]:
            out.append(
                Decision(parse_iso(a["resolved_at"]), "alert_resolved", f"{a['code']} resolved", None, a["channel"],
                         details)
            )  # fmt: skip
    for c in zr.commands:
        details = {"cmd_id": c["cmd_id"], "node_uid": c["node"], "cmd": c["cmd"], "params": c["params"]}
        out.append(
            Decision(parse_iso(c["at"]), "command", f"{c['channel']} {c['cmd']}", c["rule"], c["channel"], details)
        )
    out.sort(key=lambda d: d.at)
    return out
