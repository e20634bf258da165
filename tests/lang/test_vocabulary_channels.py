"""Language 1.1: what a reading is decided by its channel and unit (metric `channel` and
`convert`, a zone's `METRIC from NODE channel KEY unit U`), a pump's `flow_flag`, and
`RuleSet.resolve_reading`, which the ingest asks what a node's reading is."""

from __future__ import annotations

import pytest

from hydro_rules.lang import model as M
from hydro_rules.lang.diagnostics import Diagnostics
from hydro_rules.lang.formatter import format_text
from hydro_rules.lang.loader import load
from hydro_rules.lang.parser import parse_text

#: a vocabulary of its own (not the standard rules), with a zone that binds channels and a unit
VOCABULARY = """hydro 1.1

metric temp_air {
  unit °C
  range -30 °C .. 70 °C
  stale after 10m
  alias TEMPERATURE
  channel temperature, air_temp_c
}

metric temp_water {
  unit °C
  range 0 °C .. 50 °C
  stale after 10m
  alias TEMP_WATER
  channel solution_temp_c
}

metric ec {
  unit mS/cm
  range 0 mS/cm .. 10 mS/cm
  stale after 5m
  alias EC
  channel ec_sensor
}

metric tds {
  unit ppm
  range 0 ppm .. 5000 ppm
  stale after 5m
  alias TDS
  channel ec_tds_ppm
}

metric flow_rate {
  unit L/min
  range 0 L/min .. 100 L/min
  stale after 1m
  alias FLOW_RATE
}

metric flow_present {
  range 0 .. 1
  stale after 1m
  channel flow_present
}

metric water_level {
  unit %
  range 0% .. 100%
  stale after 3m
  alias WATER_LEVEL
  convert ratio by 100
  convert "relative" by 100
}

channel pump_recirc {
  kind pump
  fail_safe NC
  flow flow_rate
  flow_flag flow_present
}

profile basic {}

recipe greens {
  phase all days 0 .. {
    ec 1 mS/cm .. 2 mS/cm
  }
}

site farm-1 {
  greenhouse gh-1 {
    zone zn-1 {
      profile basic
      recipe greens
      reservoir 100 L
      pump_recirc on nd-pump-1
      temp_water from nd-ec-1 channel solution_temp_c
      water_level from nd-irr-1 channel level_solution unit ratio
      ec from nd-ec-1
    }
  }
}
"""


def _load(sets, text: str = VOCABULARY, **files: str):
    d = sets.make({"vocabulary.hydro": text, **files}, use_rules=False)
    return sets.check(d), load(d.relative_to(sets.root)).ruleset


@pytest.fixture(scope="module")
def rs(tmp_path_factory) -> M.RuleSet:
    d = tmp_path_factory.mktemp("vocabulary")
    (d / "ruleset.hydro").write_text('hydro 1\nruleset t version "1"\n', encoding="utf-8")
    (d / "vocabulary.hydro").write_text(VOCABULARY, encoding="utf-8")
    out = load(d)
    assert out.diags.sorted() == []
    return out.ruleset


# ---- the model -----------------------------------------------------------------------------------
def test_the_vocabulary_is_clean_and_fills_the_model(rs):
    assert rs.metrics["temp_air"].channels == ("temperature", "air_temp_c")
    assert rs.metrics["water_level"].conversions == {"ratio": 100.0, "relative": 100.0}
    assert rs.channels["pump_recirc"].flow_flag == "flow_present"
    zone = rs.zone("zn-1")
    assert zone.metric_nodes == {"temp_water": "nd-ec-1", "water_level": "nd-irr-1", "ec": "nd-ec-1"}
    assert zone.metric_channels == {"temp_water": "solution_temp_c", "water_level": "level_solution"}
    assert zone.metric_units == {"water_level": "ratio"}


def test_without_the_new_items_the_model_keeps_its_defaults(rs):
    assert (rs.metrics["flow_rate"].channels, rs.metrics["flow_rate"].conversions) == ((), {})
    ch = M.Channel("p", "pump", "NC", None, None, None, False, "", rs.metrics["ec"].span)
    assert ch.flow_flag is None


def test_a_quoted_convert_unit_and_a_zone_unit_keep_their_spelling(sets):
    text = VOCABULARY.replace('convert "relative" by 100', 'convert "Parts Of One" by 100')
    text = text.replace("unit ratio", 'unit "Parts Of One"')
    diags, rs = _load(sets, text)
    assert diags == []
    assert rs.metrics["water_level"].conversions == {"ratio": 100.0, "parts of one": 100.0}
    assert rs.zone("zn-1").metric_units == {"water_level": "Parts Of One"}


# ---- resolve_reading -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("metric_type", "channel", "unit", "metric", "factor"),
    [
        ("TEMPERATURE", "solution_temp_c", None, "temp_water", 1.0),  # the channel decides
        ("TEMPERATURE", "SOLUTION_TEMP_C", None, "temp_water", 1.0),  # older firmware: upper case
        ("TEMPERATURE", "air_temp_c", None, "temp_air", 1.0),
        ("TEMPERATURE", None, None, "temp_air", 1.0),
        ("TEMPERATURE", "temp_water", None, "temp_water", 1.0),  # a key naming a metric of the same unit
        ("TEMPERATURE", "ec", None, "temp_air", 1.0),  # ... but not one of another unit
        ("FLOW_RATE", "flow_present", None, "flow_present", 1.0),
        ("FLOW_RATE", "pump_flow", None, "flow_rate", 1.0),
        ("TDS", "ec_tds_ppm", None, "tds", 1.0),
        ("EC", "ec_tds_ppm", None, "tds", 1.0),  # TDS is never EC
        ("EC", "ec_sensor", None, "ec", 1.0),
        ("PUMP_STATE", "solution_temp_c", None, "temp_water", 1.0),  # a declared channel, whatever the type
        ("WATER_LEVEL", "water_level", "ratio", "water_level", 100.0),
        ("WATER_LEVEL", "water_level", " Relative ", "water_level", 100.0),
        ("WATER_LEVEL", "water_level", "%", "water_level", 1.0),
        ("WATER_LEVEL", "water_level", "percent", "water_level", 1.0),
        ("WATER_LEVEL", "water_level", "", "water_level", 1.0),
        ("WATER_LEVEL", "water_level", "cm", "water_level", None),  # a wrong-scale level is refused
        ("EC", None, "uS/cm", "ec", 0.001),  # a unit of the language, of the metric's dimension
        ("EC", None, "µS/cm", "ec", 0.001),
        ("EC", None, "ms/cm", "ec", 1.0),
        ("TEMPERATURE", None, "degC", "temp_air", 1.0),
        ("TEMPERATURE", None, "C", "temp_air", 1.0),
        ("TEMPERATURE", None, "°F", "temp_air", None),
        ("FLOW_RATE", "flow_present", "L/min", "flow_present", None),  # a flag has no unit
    ],
)
def test_resolve_reading(rs, metric_type, channel, unit, metric, factor):
    got = rs.resolve_reading(metric_type, channel, unit)
    assert (got.metric, got.factor) == (metric, pytest.approx(factor) if factor else factor)


@pytest.mark.parametrize(("metric_type", "channel"), [("CO2", None), ("CO2", "co2_sensor"), ("PUMP_STATE", "pump")])
def test_a_reading_the_vocabulary_does_not_know_resolves_to_none(rs, metric_type, channel):
    assert rs.resolve_reading(metric_type, channel) is None


def test_resolve_reading_says_why_when_the_reading_is_not_plain(rs):
    assert rs.resolve_reading("EC", "ec_sensor").note is None
    assert rs.resolve_reading("TEMPERATURE", "solution_temp_c").note == "channel solution_temp_c carries temp_water"
    assert rs.resolve_reading("WATER_LEVEL", None, "ratio").note == "ratio converted by 100"
    assert rs.resolve_reading("WATER_LEVEL", None, "cm").note == "water_level is in % and converts no cm"


# ---- a hydro 1 file ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "at", "words"),
    [
        ("  alias EC\n", "  alias EC\n  channel ec_sensor\n", "channel ec_sensor", "channel"),
        ("  alias EC\n", "  alias EC\n  convert uS by 0.001\n", "convert uS", "convert"),
        ("  fail_safe NC\n", "  fail_safe NC\n  flow_flag flow_present\n", "flow_flag", "flow_flag"),
        ("ec from nd-ec-1", "ec from nd-ec-1 channel ec_sensor", "ec from", "ec from nd-ec-1 channel"),
        ("ec from nd-ec-1", "ec from nd-ec-1 unit uS/cm", "ec from", "ec from nd-ec-1 unit"),
    ],
)
def test_each_new_item_in_a_hydro_1_file_is_told_to_say_hydro_1_1(sets, old, new, at, words):
    plain = (
        VOCABULARY.replace("  channel temperature, air_temp_c\n", "")
        .replace("  channel solution_temp_c\n", "")
        .replace("  channel ec_sensor\n", "")
        .replace("  channel ec_tds_ppm\n", "")
        .replace("  channel flow_present\n", "")
        .replace('  convert ratio by 100\n  convert "relative" by 100\n', "")
        .replace("  flow_flag flow_present\n", "")
        .replace(" channel solution_temp_c", "")
        .replace(" channel level_solution unit ratio", "")
        .replace("hydro 1.1\n", "hydro 1\n")
    )
    assert _load(sets, plain)[0] == []  # none of the new items: a clean hydro 1 file
    text = sets.replace(plain, old, new)
    d = sets.one({"vocabulary.hydro": text}, use_rules=False)
    assert sets.at(d) == ("HR007", *sets.pos(text, at))
    assert d.message == f"`{words}` is language 1.1, but this file starts with `hydro 1`"
    assert sets.check({"vocabulary.hydro": text.replace("hydro 1\n", "hydro 1.1\n", 1)}, use_rules=False) == []


def test_flow_flag_is_not_read_as_flow_in_hydro_1():
    """Language 1 read `flow_flag x` as `flow _flag` and then a metric `x`; it is now the 1.1 item."""
    diags = Diagnostics()
    tree = parse_text("hydro 1\nchannel p {\n  kind pump\n  flow_flag f\n}\n", "t.hydro", diags)
    assert [(d.code, d.span.line, d.span.column) for d in diags.sorted()] == [("HR007", 4, 3)]
    assert [i.keyword for i in tree.decls[0].items] == ["kind", "flow_flag"]


def test_flow_in_hydro_1_still_parses_as_before():
    diags = Diagnostics()
    tree = parse_text("hydro 1\nchannel p {\n  kind pump\n  flow flow_rate\n}\n", "t.hydro", diags)
    assert diags.sorted() == []
    (kind, flow) = tree.decls[0].items
    assert (flow.keyword, flow.values[0].name, flow.span.column) == ("flow", "flow_rate", 8)


# ---- check -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "code", "at", "message"),
    [
        (  # two metrics, one channel (keys compared without case)
            "  channel ec_tds_ppm\n",
            "  channel ec_tds_ppm, EC_Sensor\n",
            "HR114",
            "EC_Sensor",
            "channel `EC_Sensor` already carries metric `ec` (at ",
        ),
        ("  channel ec_tds_ppm\n", "  channel ec_tds_ppm, ec_tds_ppm\n", "HR107", "ec_tds_ppm, |", "given twice"),
        ("convert ratio by 100", "convert ratio by 0", "HR204", "by |0", "multiplies by a number above 0, not `0`"),
        ("convert ratio by 100", "convert ratio by -2", "HR204", "-2", "multiplies by a number above 0, not `-2`"),
        ("convert ratio by 100", "convert ratio by 1" + "0" * 400, "HR204", "1000", "above 0"),  # no infinity
        ("convert ratio by 100", "convert ratio by 100%", "HR201", "100%", "by a plain number, `100%` is a"),
        ("convert ratio by 100", "convert percent by 1", "HR204", "percent", "is the unit of `water_level` itself"),
        ('convert "relative"', 'convert "Ratio"', "HR107", 'convert "Ratio"', "`convert Ratio` is given twice"),
        ('convert "relative" by 100', 'convert "" by 100', "HR204", '""', "needs the unit a node sends"),
        (  # a zone's unit the metric cannot convert
            "level_solution unit ratio",
            "level_solution unit cm",
            "HR201",
            "unit |cm",
            "metric `water_level` is in % and converts no `cm`",
        ),
        (  # a zone binds a metric to a channel the vocabulary gives another metric
            "ec from nd-ec-1\n",
            "ec from nd-ec-1 channel ec_tds_ppm\n",
            "HR114",
            "channel |ec_tds_ppm",
            "channel `ec_tds_ppm` carries metric `tds`, not `ec`",
        ),
        (  # ... or to a channel of that node it binds to another metric
            "ec from nd-ec-1\n",
            "ec from nd-ec-1 channel SOLUTION_TEMP_C\n",
            "HR114",
            "SOLUTION_TEMP_C",
            "channel `SOLUTION_TEMP_C` carries metric `temp_water`, not `ec`",
        ),
        ("flow_flag flow_present", "flow_flag flow_presnt", "HR101", "flow_presnt", "unknown metric `flow_presnt`"),
        (
            "flow_flag flow_present",
            "flow_flag flow_rate",
            "HR201",
            "flow_flag |flow_rate",
            "a 0/1 flag; metric `flow_rate`",
        ),
        ("  range 0 .. 1\n", "  range 0 .. 5\n", "HR204", None, "has the range 0 .. 5"),
        ("  kind pump\n", "  kind valve\n", "HR113", "flow_flag", "`pump_recirc` is a valve"),
        ("  flow_flag flow_present\n", "  flow_flag flow_present\n  flow_flag flow_present\n", "HR107", None, "twice"),
    ],
)
def test_vocabulary_mistakes_are_positioned(sets, old, new, code, at, message):
    text = sets.replace(VOCABULARY, old, new)
    diags, _ = _load(sets, text)
    found = [d for d in diags if d.code == code and message in d.message]
    assert len(found) == 1, [(d.code, str(d.span), d.message) for d in diags]
    if at is not None:  # `at` is looked for in the new text, else in the whole; `|` marks the column
        head, _, tail = at.rpartition("|")
        if head + tail in new:
            i = text.index(new) + new.index(head + tail) + len(head)
            line, col = text.count("\n", 0, i) + 1, i - text.rfind("\n", 0, i)
        else:
            line, col = sets.pos(text, at)
        assert (found[0].span.line, found[0].span.column) == (line, col)


def test_the_same_channel_of_two_nodes_is_two_channels(sets):
    text = sets.replace(VOCABULARY, "ec from nd-ec-1\n", "ec from nd-ec-2 channel probe\n")
    text = sets.replace(
        text, "temp_water from nd-ec-1 channel solution_temp_c", "temp_water from nd-ec-1 channel probe"
    )
    # (`probe` is no metric's declared channel; the key is free on nd-ec-1 and on nd-ec-2)
    assert _load(sets, text)[0] == []


def test_a_zone_binding_the_channel_of_a_node_twice_is_an_error(sets):
    text = sets.replace(VOCABULARY, "ec from nd-ec-1\n", "ec from nd-ec-1 channel probe\n")
    text = sets.replace(
        text, "temp_water from nd-ec-1 channel solution_temp_c", "temp_water from nd-ec-1 channel PROBE"
    )
    diags, _ = _load(sets, text)
    assert [(d.code, d.message) for d in diags] == [
        ("HR114", "channel `probe` of `nd-ec-1` already carries metric `temp_water` in this zone")
    ]


# ---- CHANNEL.flow_flag in expressions ------------------------------------------------------------
ALERT = """hydro {version}

alert biz_no_flow {{
  source biz
  severity warning
  text "No flow past the recirculation pump"
  when pump_recirc is on and {expr} for 1m
  clear when pump_recirc is off
}}
"""


def test_flow_flag_is_a_channel_attribute_like_flow(sets):
    diags, rs = _load(sets, **{"alerts.hydro": ALERT.format(version="1.1", expr="pump_recirc.flow_flag < 1")})
    assert diags == []
    cond = rs.alerts["biz_no_flow"].when[0].expr
    ref = cond.items[1].left
    assert (ref.channel, ref.attr, ref.dim) == ("pump_recirc", "flow_flag", "number")


def test_flow_flag_of_the_scope_channel(sets):
    alert = ALERT.format(version="1.1", expr="pump.flow_flag == 0").replace(
        "biz_no_flow {", "biz_no_flow for each pump {"
    )
    alert = alert.replace("pump_recirc is", "pump is")
    diags, rs = _load(sets, **{"alerts.hydro": alert})
    assert diags == []


def test_flow_flag_of_a_channel_that_declares_none_is_an_error(sets):
    text = sets.replace(VOCABULARY, "  flow_flag flow_present\n", "")
    alert = ALERT.format(version="1.1", expr="pump_recirc.flow_flag < 1")
    d = sets.one({"vocabulary.hydro": text, "alerts.hydro": alert}, use_rules=False)
    assert sets.at(d) == ("HR106", *sets.pos(alert, "pump_recirc.flow_flag"))
    assert d.message == "channel `pump_recirc` declares no `flow_flag` metric"


def test_flow_flag_in_a_hydro_1_expression_needs_1_1(sets):
    alert = ALERT.format(version="1", expr="pump_recirc.flow_flag < 1")
    d = sets.one({"vocabulary.hydro": VOCABULARY, "alerts.hydro": alert}, use_rules=False)
    assert sets.at(d) == ("HR007", *sets.pos(alert, "flow_flag"))
    assert d.message == "`.flow_flag` is language 1.1, but this file starts with `hydro 1`"


# ---- fmt -----------------------------------------------------------------------------------------
MESSY = """hydro 1.1

metric water_level { unit %  range 0% .. 100%  stale after 3m
  channel   water_level ,LEVEL_2   # both level sensors
  convert ratio   by 100
  convert "parts of one" by   100 }
channel pump_recirc { kind pump fail_safe NC flow_flag    flow_present }
site s { greenhouse g { zone z { water_level from nd-1 channel  water_level   unit ratio
  ph from nd-2 unit "pH"   ec from nd-2 channel ec_sensor } } }
"""

CANONICAL = """hydro 1.1

metric water_level {
  unit %
  range 0% .. 100%
  stale after 3m
  channel water_level, LEVEL_2  # both level sensors
  convert ratio by 100
  convert "parts of one" by 100
}

channel pump_recirc {
  kind pump
  fail_safe NC
  flow_flag flow_present
}

site s {
  greenhouse g {
    zone z {
      water_level from nd-1 channel water_level unit ratio
      ph from nd-2 unit "pH"
      ec from nd-2 channel ec_sensor
    }
  }
}
"""


def test_fmt_prints_the_new_items_canonically():
    assert format_text(MESSY, "t.hydro") == CANONICAL
    assert format_text(CANONICAL, "t.hydro") == CANONICAL
    assert format_text(VOCABULARY, "t.hydro") == VOCABULARY
