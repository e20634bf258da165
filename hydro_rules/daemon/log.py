"""What the daemon decided, as decision-log rows (the plan's ai_logs).

Each transition, command, refusal, held change, alert change and event of an
evaluation becomes one row: the zone, the time, the rule-set version, the rule
that caused it with its span (file:line), one line of summary worded exactly as
the dry-run timeline words it (`sim.dryrun.words`), and the values the rule or
guard read, as `explain` shows them (traced on the zone program right after the
evaluation, while its per-tick readings are those the decision saw).

Rows are plain JSON-able dicts here (`at` in epoch seconds) so that they can wait
in the journal while the database is down; `to_row` makes the store's DecisionRow.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime

from ..engine import interp
from ..sim.dryrun import words

log = logging.getLogger(__name__)

#: the dry-run timeline's kinds -> the decision log's kinds
KINDS = {
    "alert": "alert_raised",
    "resolved": "alert_resolved",
    "transition": "transition",
    "event": "event",
    "refused": "refusal",
    "held": "held",
    "command": "command",
}


def entry(at: float, kind: str, summary: str, *, rule=None, channel=None, details=None) -> dict:
    return {"at": at, "kind": kind, "summary": summary, "rule": rule, "channel": channel, "details": details or {}}


def to_row(e: dict, *, zone_id: int, ruleset_version: str, daemon_id: str | None):
    from ..store.decisions import DecisionRow

    return DecisionRow(
        zone_id=zone_id,
        at=datetime.fromtimestamp(e["at"], UTC),
        kind=e["kind"],
        ruleset_version=e.get("ruleset_version") or ruleset_version,
        summary=e["summary"],
        rule=e.get("rule"),
        channel=e.get("channel"),
        details=e.get("details") or {},
        daemon_id=daemon_id,
    )


def entries(prog, d) -> list[dict]:
    """The decision-log entries of one evaluation's Decisions `d` of zone program `prog`."""
    out = []
    for kind, item, text, _routine in words(d):
        try:
            rule, channel, traces, extra = _why(prog, kind, item)
        except Exception:  # the log must never stop control
            log.exception("cannot trace the values behind a %s", kind)
            rule, channel, traces, extra = None, getattr(item, "channel", None), [], {}
        details = {**extra, **seen(prog, traces)}
        out.append(entry(item.at, KINDS[kind], text, rule=rule, channel=channel, details=plain(details)))
    return out


def _span(s) -> str:
    return f"{s.path}:{s.line}"


def _trace(expr, prog, ch=None):
    try:
        return interp.trace(expr, prog, ch)
    except Exception:  # a value the program cannot give now (a channel it lost): no values, no failure
        return None


def _deny(rs, guard: str, reason: str):
    g = rs.guards.get(guard)
    if g is None:
        return None
    return next((d for d in g.denies if reason == d.reason or reason.startswith(d.reason)), None)


def _transition(rs, machine: str, source: str, target: str, index: int = -1):
    m = rs.machines.get(machine)
    state = m.states.get(source) if m else None
    if state is None:
        return None
    if 0 <= index < len(state.transitions) and state.transitions[index].target == target:
        return state.transitions[index]
    return next((t for t in state.transitions if t.target == target), None)


def _why(prog, kind: str, item):
    """(rule with its span, channel, traces of what it read, extra details) of one decision."""
    rs = prog.rs
    if kind == "transition" or kind == "held":
        tr = _transition(rs, item.machine, item.source, item.target, getattr(item, "index", -1))
        if tr is None:
            return None, None, [], {"machine": item.machine}
        traces = [_trace(tr.cond.expr, prog)] if tr.cond is not None else []
        rule = f"transition {item.source} -> {item.target} ({_span(tr.span)})"
        extra = {"machine": item.machine, "from": item.source, "to": item.target}
        if kind == "held":
            extra["reason"] = item.reason
        return rule, None, traces, extra
    if kind == "refused":
        deny = _deny(rs, item.guard, item.reason)
        rule = f"guard {item.guard}" + (f" ({_span(deny.span)})" if deny else "")
        traces = [_trace(deny.expr, prog, item.channel)] if deny else []
        return rule, item.channel, traces, {"guard": item.guard, "reason": item.reason}
    if kind in ("alert", "resolved"):
        al = rs.alerts.get(item.code)
        extra = {"code": item.code, "severity": item.severity}
        if al is None:
            return None, item.channel, [], extra
        details = item.details or {}
        if kind == "resolved":
            extra.update(by=item.by, why=item.why)
            traces = [_trace(al.clear.expr, prog, item.channel)] if al.clear is not None else []
            return f"alert {item.code} ({_span(al.span)})", item.channel, traces, extra
        if details.get("guard"):
            deny = _deny(rs, details["guard"], details.get("reason") or "")
            if deny is not None:
                rule = f"guard {details['guard']} ({_span(deny.span)})"
                return rule, item.channel, [_trace(deny.expr, prog, item.channel)], extra
        if details.get("by"):
            return details["by"], item.channel, [], extra
        if details.get("error_code"):
            extra.update(error_code=details["error_code"], cmd_id=details.get("cmd_id"))
            return f"alert {item.code} on error ({_span(al.span)})", item.channel, [], extra
        traces = [_trace(c.expr, prog, item.channel) for c in al.when[:1]]
        return f"alert {item.code} ({_span(al.span)})", item.channel, traces, extra
    if kind == "event":
        values = {k: v for k, v in (item.details or {}).items() if isinstance(v, int | float) and k != "cause"}
        return item.details.get("cause"), None, [], {"type": item.type, "values": values} if values else {}
    if kind == "command":
        c = prog.st.channels.get(item.channel) if prog.st is not None else None
        traces = []
        for g in c.guards if c is not None else ():
            guard = rs.guards.get(g)
            for deny in guard.denies if guard else ():
                traces.append(_trace(deny.expr, prog, item.channel))
        extra = {"cmd_id": item.cmd_id, "node_uid": item.node_uid, "cmd": item.cmd, "params": item.params}
        if c is not None and c.guards:
            extra["guards"] = list(c.guards)
        return item.rule, item.channel, traces, extra
    return None, getattr(item, "channel", None), [], {}


def seen(prog, traces) -> dict:
    """{"values": {name: value}, "seen": "ph = 6.2 pH, ...", "status": {metric: stale|frozen|...}} of
    what the traced conditions read; {} when they read nothing."""
    values: dict = {}
    texts: list[str] = []
    status: dict = {}
    for t in traces:
        if t is None:
            continue
        for leaf in interp.leaves(t):
            if leaf.text in values:
                continue
            values[leaf.text] = leaf.value
            texts.append(f"{leaf.text} = {leaf.shown()}")
            st = prog.mstat.get(leaf.text)
            if st is not None and st != "ok":
                status[leaf.text] = st
    if not values:
        return {}
    out = {"values": values, "seen": ", ".join(texts)}
    if status:
        out["status"] = status
    return out


def plain(value):
    """JSON as jsonb takes it: no NaN or infinity (`never`), floats rounded, tuples as lists."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "never"
        return round(value, 4)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per log line (`--log-format json`): time, level, logger, message, and the
    exception or any `extra` fields a record carries."""

    _PLAIN = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in self._PLAIN and not k.startswith("_"):
                doc[k] = v
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str, ensure_ascii=False)
