"""State machines as diagrams: Mermaid `stateDiagram-v2` and Graphviz dot."""

from __future__ import annotations

from . import model as M
from . import units as U


def label(t: M.Transition) -> str:
    """A transition's trigger in short words: `water_level <= levels.empty`, `timeout 30m`."""
    parts = []
    if t.every is not None:
        parts.append(f"every {expr_text(t.every)} at {expr_text(t.at)}")
    if t.cond is not None:
        hold = f" for {U.format_duration(t.cond.hold_s)}" if t.cond.hold_s else ""
        parts.append(t.cond.text + hold)
    if t.after_s is not None:
        parts.append(("timeout " if t.is_fail else "after ") + U.format_duration(t.after_s))
    return " and ".join(parts)


def expr_text(e) -> str:
    if isinstance(e, M.SettingRef):
        return e.path.replace("water_cycle.", "")
    if isinstance(e, M.Const):
        return U.describe(float(e.value), e.dim)
    return "…"


def to_mermaid(rs: M.RuleSet) -> str:
    out = ["stateDiagram-v2"]
    for m in rs.machines.values():
        out.append(f"    %% machine {m.name}")
        out.append(f"    [*] --> {m.initial}")
        for s in m.states.values():
            for t in s.transitions:
                text = label(t).replace("<", "#lt;").replace(">", "#gt;").replace(":", "#colon;")
                out.append(f"    {s.name} --> {t.target}: {text}")
    return "\n".join(out)


def to_dot(rs: M.RuleSet) -> str:
    out = [
        "digraph rules {",
        "    rankdir=LR;",
        '    node [shape=box, style=rounded, fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
    ]
    for m in rs.machines.values():
        out.append(f'    subgraph "cluster_{m.name}" {{')
        out.append(f'        label="{m.name}";')
        out.append(f'        "{m.name}__start" [shape=point, label=""];')
        out.append(f'        "{m.name}__start" -> "{m.initial}";')
        for s in m.states.values():
            for t in s.transitions:
                style = ", style=dashed, color=red" if t.is_fail else ""
                text = label(t).replace("\\", "\\\\").replace('"', '\\"')
                out.append(f'        "{s.name}" -> "{t.target}" [label="{text}"{style}];')
        out.append("    }")
    out.append("}")
    return "\n".join(out)
