"""fmt never changes meaning: the checked model of fmt(x) is that of x, for the shipped files with
random layout noise and for generated rule files; fmt is idempotent and keeps every comment."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from lark import Lark

from hydro_rules.lang import model as M
from hydro_rules.lang.checker import Checker
from hydro_rules.lang.diagnostics import Diagnostics
from hydro_rules.lang.formatter import format_text
from hydro_rules.lang.grammar import SUPPORTED_VERSIONS, grammar_text
from hydro_rules.lang.loader import load
from hydro_rules.lang.parser import parse_text

REPO = Path(__file__).resolve().parents[2]
CASES = Path(__file__).parent / "fmt_cases"
#: no shrinking: a whole generated file shrinks for minutes; a failure prints the file as drawn
SETTINGS = settings(
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---- comparing meaning ----------------------------------------------------------------------------
def plain(x, skip=("span", "content_hash")):
    """A checked model as nested tuples without positions (and without the content hash, which
    covers the layout by design): two rule sets mean the same when their plain forms are equal."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        fields = [f.name for f in dataclasses.fields(x) if f.name not in skip]
        return (type(x).__name__,) + tuple((f, plain(getattr(x, f), skip)) for f in fields)
    if isinstance(x, dict):
        items = ((str(k), plain(v, skip)) for k, v in x.items())
        return ("dict",) + tuple(sorted(items, key=lambda kv: kv[0]))
    if isinstance(x, list | tuple):
        return tuple(plain(v, skip) for v in x)
    return x


def tree_plain(text: str):
    """The syntax tree without positions, comments and brace style: what a file says."""
    diags = Diagnostics()
    return plain(parse_text(text, "t.hydro", diags), skip=("span", "comments", "braced", "path"))


_POSITION = re.compile(r"\S+:\d+:\d+")


def findings(diags: Diagnostics) -> list[tuple[str, str]]:
    """What a check found, without where (positions move when the layout changes)."""
    return sorted((d.code, _POSITION.sub("<at>", d.message)) for d in diags.items)


def check_text(text: str):
    """The plain checked model and findings of one file checked on its own."""
    diags = Diagnostics()
    tree = parse_text(text, "gen.hydro", diags)
    assert tree is not None and not diags.errors, [str(d.span) + " " + d.message for d in diags.items]
    rs = Checker(diags).check([tree], M.RuleSet("gen", "0", ""))
    return plain(rs), findings(diags)


def comments(text: str) -> list[str]:
    return [m.group(1).rstrip() for m in re.finditer(r'"(?:[^"\\\n]|\\.)*"|(#[^\n]*)', text) if m.group(1)]


def test_plain_tells_different_models_apart():
    """The comparison itself: a changed value, unit or operator grouping shows."""
    base = "hydro 1\nmetric ph { unit pH range 0 .. 14 stale after 5m }\nalert biz_a { when {} }\n"
    a = check_text(base.replace("{}", "ph > 1 + (2 + 3)"))
    assert a == check_text(base.replace("{}", "ph  >  1 + ( 2 + 3 )"))
    assert a != check_text(base.replace("{}", "ph > 1 + 2 + 3"))
    assert a != check_text(base.replace("{}", "ph > 1 + (2 + 4)"))
    assert a != check_text(base.replace("{}", "ph >= 1 + (2 + 3)"))


# ---- layout noise: the same tokens, other blanks and extra comments ----------------------------------
#: the latest version's grammar reads the tokens of files of every version
_TOKENS = Lark(
    grammar_text(SUPPORTED_VERSIONS[-1]), parser="lalr", lexer="contextual", start="start", maybe_placeholders=False
)
TOUCHING = set("(){},;")


def tokens(text: str) -> list[str]:
    """The tokens of a valid file after its first line, with its comments as tokens of their own."""
    first_end = text.index("\n") + 1
    out, pos = [], 0
    for tok in _TOKENS.parse_interactive(text).iter_parse():
        if tok.type == "$END":
            break
        if tok.start_pos >= first_end:
            out.extend(m.group() for m in re.finditer(r"#[^\n]*", text[max(pos, first_end) : tok.start_pos]))
            out.append(str(tok))
        pos = tok.end_pos
    out.extend(m.group() for m in re.finditer(r"#[^\n]*", text[max(pos, first_end) :]))
    return out


COMMENT_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=12)
GAPS = st.sampled_from([" ", "  ", "\t", "\n", "\n\n", "\n\n\n", "\n    ", " \n\t  "])


@st.composite
def layout(draw, toks: list[str], header: str = "hydro 1") -> str:
    """The tokens joined by random blanks, with random comments between them."""
    out = [header + draw(st.sampled_from(["", " ", "  # header note"])) + "\n"]
    prev = None
    for tok in toks:
        if prev is not None and not prev.startswith("#"):
            may_touch = prev in TOUCHING or tok in TOUCHING
            out.append(draw(st.sampled_from(["", " ", "\n"]) if may_touch and draw(st.booleans()) else GAPS))
        if draw(st.integers(0, 9)) == 0:
            out.append(f"# noise {draw(COMMENT_TEXT)}\n" + draw(st.sampled_from(["", "  ", "\n"])))
        out.append(tok)
        if tok.startswith("#"):
            out.append("\n")
        prev = tok
    return "".join(out) + draw(st.sampled_from(["", "\n", "\n\n", "  \n"]))


SHIPPED = sorted(
    p.relative_to(REPO).as_posix() for d in ("rules", "examples") for p in (REPO / d).rglob("*.hydro") if p.is_file()
)


@pytest.fixture(scope="module")
def shipped_copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("shipped")
    for d in ("rules", "examples"):
        shutil.copytree(REPO / d, root / d)
    return root


def meaning(root: Path, relpath: str):
    """The plain model of the rule set holding the file (or of the file alone) and the file's tree."""
    path = root / relpath
    text = path.read_text(encoding="utf-8")
    if (path.parent / "ruleset.hydro").is_file():
        loaded = load(path.parent)
        return plain(loaded.ruleset), findings(loaded.diags), tree_plain(text)
    return check_text(text), tree_plain(text)


@settings(SETTINGS, max_examples=40)
@given(data=st.data(), relpath=st.sampled_from(SHIPPED))
def test_shipped_files_with_layout_noise_keep_their_meaning(shipped_copy: Path, data, relpath: str):
    original = (REPO / relpath).read_text(encoding="utf-8")
    header = original.split("\n", 1)[0]  # `hydro 1` or `hydro 1.1`: the file keeps its version
    noisy = data.draw(layout(tokens(original), header), label="noisy")
    target = shipped_copy / relpath
    try:
        target.write_text(noisy, encoding="utf-8")
        before = meaning(shipped_copy, relpath)
        out = format_text(noisy, relpath)
        target.write_text(out, encoding="utf-8")
        after = meaning(shipped_copy, relpath)
    finally:
        target.write_text(original, encoding="utf-8")
    assert after == before
    assert format_text(out, relpath) == out
    assert comments(out) == comments(noisy)


# ---- generated rule files -------------------------------------------------------------------------------
#: metric -> (unit, range, stale, a literal in the metric's unit for a value v in 0..1 of the range)
METRICS = {
    "ph": ("pH", ["0", "..", "14"], lambda v: f"{1 + 12 * v:.1f}"),
    "ec": ("mS/cm", ["0 mS/cm", "..", "10 mS/cm"], lambda v: f"{0.2 + 9.6 * v:.2f} mS/cm"),
    "water_level": ("%", ["0%", "..", "100%"], lambda v: f"{1 + int(98 * v)}%"),
    "temp_water": ("°C", ["-10 °C", "..", "50 °C"], lambda v: f"{-9 + int(58 * v)} °C"),
    "pump_current": ("mA", ["0 mA", "..", "20000 mA"], lambda v: f"{1 + int(19000 * v)} mA"),
    "flow_rate": ("L/min", ["0 L/min", "..", "500 L/min"], lambda v: f"{0.5 + 400 * v:.1f} L/min"),
}
PUMPS = ("pump_recirc", "pump_drain", "pump_fill")
DURATIONS = st.sampled_from(["30s", "5m", "10m", "15m", "1h", "2h", "1h30m"])
UNIT = st.floats(0, 1, allow_nan=False)
CMP = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])


@st.composite
def atom(draw, scoped: bool) -> list[str]:
    kind = draw(st.integers(0, 6 if scoped else 5))
    m = draw(st.sampled_from(sorted(METRICS)))
    lit = METRICS[m][2]
    if kind == 0:
        return [m, "is", draw(st.sampled_from(["known", "unknown"]))]
    if kind == 1:
        return [draw(st.sampled_from(PUMPS)), "is", draw(st.sampled_from(["on", "off"]))]
    if kind == 2:  # arithmetic in the metric's unit
        return [m, "+", lit(draw(UNIT) / 10), draw(CMP), lit(draw(UNIT))]
    if kind == 3:
        return ["(", m, "-", lit(draw(UNIT) / 10), ")", "*", "2", draw(CMP), lit(draw(UNIT))]
    if kind == 6:
        return ["pump.on_for", draw(CMP), draw(DURATIONS)]
    return [m, draw(CMP), lit(draw(UNIT))]


PREC = {"or": 1, "and": 2, "not": 3, None: 9}


@st.composite
def condition(draw, scoped: bool = False, depth: int = 3) -> tuple[list[str], str | None]:
    """Tokens of a yes/no expression and its top operator (None for an atom or a parenthesized one)."""
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(atom(scoped)), None
    op = draw(st.sampled_from(["and", "or", "not", "chain"]))
    if op == "chain":  # long enough to be wrapped
        op = draw(st.sampled_from(["and", "or"]))
        parts = [draw(atom(scoped)) for _ in range(draw(st.integers(4, 9)))]
        return [t for i, p in enumerate(parts) for t in ([op] if i else []) + p], op
    if op == "not":
        child, cop = draw(condition(scoped, depth - 1))
        return ["not"] + (["(", *child, ")"] if cop is not None or draw(st.booleans()) else child), "not"
    out = []
    for i in range(2):
        child, cop = draw(condition(scoped, depth - 1))
        needs = PREC[cop] < PREC[op]
        out += ([op] if i else []) + (["(", *child, ")"] if needs or draw(st.integers(0, 3)) == 0 else child)
    return out, op


@st.composite
def cond_tokens(draw, scoped: bool = False) -> list[str]:
    toks, _ = draw(condition(scoped))
    return toks + (["for", draw(DURATIONS)] if draw(st.booleans()) else [])


def block(head: list[str], items: list[list[str]]) -> list[str]:
    return head + ["{"] + [t for it in items for t in it] + ["}"]


@st.composite
def rule_file(draw) -> str:
    """A valid rule file: metrics, channels, alerts, guards, a machine, rules, a profile, a recipe, a site."""
    decls: list[list[str]] = []
    for name, (unit, rng, _) in METRICS.items():
        items = [["unit", unit], ["range", *rng], ["stale", "after", draw(DURATIONS)]]
        if draw(st.booleans()):
            items.append(["alias", name.upper()] + ([",", name.upper() + "_2"] if draw(st.booleans()) else []))
        if draw(st.booleans()):
            items.append(["text", f'"the {name} reading"'])
        decls.append(block(["metric", name], draw(st.permutations(items))))
    for p in PUMPS:
        items = [["kind", "pump"], ["fail_safe", draw(st.sampled_from(["NC", "NO"]))], ["current", "pump_current"]]
        decls.append(block(["channel", p], items + [["flow", "flow_rate"]]))
    alerts = [f"biz_a{i}" for i in range(draw(st.integers(1, 4)))]
    for code in alerts:
        scoped = code != alerts[0] and draw(st.booleans())  # actions raise biz_a0, so it is zone-wide
        items = [["source", "biz"], ["severity", draw(st.sampled_from(["info", "warning", "critical"]))]]
        items += [["text", '"something is off"'], ["when", *draw(cond_tokens(scoped))]]
        items.append(["clear", "when", *draw(cond_tokens(scoped))] if draw(st.booleans()) else ["clear", "on", "reset"])
        decls.append(block(["alert", code] + (["for", "each", "pump"] if scoped else []), draw(st.permutations(items))))
    guards = [f"g{i}" for i in range(draw(st.integers(1, 2)))]
    for g in guards:
        denies = []
        for _ in range(draw(st.integers(1, 3))):
            raises = ["raise", draw(st.sampled_from(alerts))] if draw(st.booleans()) else []
            denies.append(["deny", '"not now"', "when", *draw(condition(True))[0], *raises])
        decls.append(block(["guard", g, "for", "each", "pump"], denies))
    decls.append(machine(draw, guards, alerts))
    if draw(st.booleans()):
        items = [["in", "S0"], ["when", *draw(cond_tokens())], ["do", *actions(draw, guards, alerts)]]
        decls.append(block(["rule", "r0"], items + [["repeat", "every", "10m"]]))
    decls.append(profile(draw))
    decls.append(recipe(draw))
    binds = [[p, "on", f"nd-{p[5:]}"] for p in PUMPS] + [[m, "from", f"nd-{m[:2]}"] for m in METRICS]
    zone = block(["zone", "zn-1", '"zone one"'], [["reservoir", "100 L"], ["profile", "p"], ["recipe", "r"], *binds])
    decls.append(block(["site", "farm-1"], [["timezone", '"UTC"'], block(["greenhouse", "gh-1"], [zone])]))
    order = draw(st.permutations(range(len(decls))))
    return draw(layout([t for i in order for t in decls[i]]))


def actions(draw, guards: list[str], alerts: list[str]) -> list[str]:
    choices = [["stop", p] for p in PUMPS] + [["event", "SOMETHING"], ["raise", alerts[0]], ["record", "ph", ",", "ec"]]
    choices += [["start", p, "guarded", "by", *",".join(guards).replace(",", " , ").split()] for p in PUMPS]
    acts = draw(st.lists(st.sampled_from(choices), min_size=1, max_size=4))
    if len(acts) == 1 and draw(st.booleans()):
        return acts[0]
    return ["{"] + [t for i, a in enumerate(acts) for t in ([";"] if i and draw(st.booleans()) else []) + a] + ["}"]


def machine(draw, guards: list[str], alerts: list[str]) -> list[str]:
    n = draw(st.integers(1, 4))
    states = []
    for i in range(n):
        items = [["enter", *actions(draw, guards, alerts)], ["go", f"S{(i + 1) % n}", "after", draw(DURATIONS)]]
        if draw(st.booleans()):
            go = ["go", f"S{draw(st.integers(0, n - 1))}"]
            if draw(st.booleans()):
                go += ["every", "water_change.interval", "at", "water_change.time_of_day"]
            go += ["when", *draw(cond_tokens())]
            items.append(go + (["do", *actions(draw, guards, alerts)] if draw(st.booleans()) else []))
        if draw(st.booleans()):
            items.append(["exit", *actions(draw, guards, alerts)])
        states.append(block(["state", f"S{i}"], draw(st.permutations(items))))
    return block(["machine", "m"], [["initial", "S0"], *states])


def profile(draw) -> list[str]:
    recirc = [["enabled", "yes"], ["max_recirc_off", "10m"], ["window", "00:00", "to", "24:00", "duty", "50%"]]
    recirc[-1] += ["period", "20m"]
    change = [["interval", draw(st.sampled_from(["7d", "10d"]))], ["time_of_day", "09:00"], ["enabled", "yes"]]
    change.append(["ec_drift_threshold", f"{draw(st.integers(5, 60))}%"])
    cycle = block(["water_cycle"], [block(["recirc"], recirc), block(["water_change"], change)])
    levels = block(["levels"], [["min", "15%"], ["empty", "5%"], ["target", "90%"]])
    dosing = block(["dosing"], [["ph_down_dose", "2 ml"], ["mixing_time", "15m"]])
    return block(["profile", "p"], draw(st.permutations([cycle, levels, dosing])))


def recipe(draw) -> list[str]:
    cuts = sorted(draw(st.sets(st.integers(1, 60), min_size=0, max_size=3)))
    bounds, phases = [0] + [c + 1 for c in cuts], []
    for i, start in enumerate(bounds):
        days = ["days", str(start), ".."] + ([str(bounds[i + 1] - 1)] if i + 1 < len(bounds) else [])
        targets = [["ph", "5.8", "..", "6.2"], ["ec", "1.0 mS/cm", "..", "1.6 mS/cm"], ["ideal_change_interval", "7d"]]
        phases.append(block(["phase", f"p{i}", *days], targets))
    return block(["recipe", "r", '"a recipe"'], phases)


@settings(SETTINGS, max_examples=25)
@given(text=rule_file())
def test_generated_files_check_clean(text: str):
    """The generator makes valid rule sets, so the meaning test below compares real models."""
    _, found = check_text(text)
    assert not [f for f in found if f[0] < "HR500"], found


@settings(SETTINGS, max_examples=50)
@given(text=rule_file())
def test_fmt_keeps_the_meaning_of_generated_files_and_is_idempotent(text: str):
    out = format_text(text, "gen.hydro")
    assert check_text(out) == check_text(text)
    assert format_text(out, "gen.hydro") == out
    assert comments(out) == comments(text)


@pytest.mark.parametrize("case", sorted(CASES.glob("*.hydro"), key=lambda p: p.name), ids=lambda p: p.name)
def test_fmt_keeps_the_meaning_of_the_golden_cases(case: Path):
    text = case.read_text(encoding="utf-8")
    assert check_text(format_text(text, case.name)) == check_text(text)
