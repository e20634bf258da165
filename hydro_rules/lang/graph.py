"""State machines as diagrams: Mermaid `stateDiagram-v2` and Graphviz dot."""

from __future__ import annotations

from . import model as M


def to_mermaid(rs: M.RuleSet) -> str:
    out = ["stateDiagram-v2"]
    for m in rs.machines.values():
        out.append(f"    %% machine {m.name}")
        out.append(f"    [*] --> {m.initial}")
        for s in m.states.values():
            for t in s.transitions:
                text = t.describe().replace("<", "#lt;").replace(">", "#gt;").replace(":", "#colon;")
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
                text = t.describe().replace("\\", "\\\\").replace('"', '\\"')
                out.append(f'        "{s.name}" -> "{t.target}" [label="{text}"{style}];')
        out.append("    }")
    out.append("}")
    return "\n".join(out)
