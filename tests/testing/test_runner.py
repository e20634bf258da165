"""`hydro-rules test`: results, failure messages, JUnit, coverage, and the shipped rules' own tests."""

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "hydro_rules", *args], capture_output=True, text=True, cwd=cwd)


def test_the_standard_rules_pass_their_tests_with_full_coverage(tmp_path):
    junit = tmp_path / "junit.xml"
    out = cli("test", str(ROOT / "rules"), "--coverage-min", "100", "--junit", str(junit))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Coverage 100.0%" in out.stdout and "0 failed" in out.stdout
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert len(suites) == len(list((ROOT / "rules" / "tests").glob("*.test.hydro")))
    assert sum(int(s.get("tests")) for s in suites) >= 33
    assert all(s.get("failures") == "0" and s.get("errors") == "0" for s in suites)


def _copy_rules(tmp_path: Path) -> Path:
    dst = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", dst)
    return dst


def test_a_failing_expectation_says_what_was_expected_and_what_happened(tmp_path):
    rules = _copy_rules(tmp_path)
    t = rules / "tests" / "water_change.test.hydro"
    t.write_text(t.read_text().replace("expect at 30m state FAILED", "expect at 30m state WATER_CHANGE_FILL", 1))
    junit = tmp_path / "junit.xml"
    out = cli("test", str(t), "--junit", str(junit))
    assert out.returncode == 1
    assert "at 30m: expected state WATER_CHANGE_FILL, got state FAILED" in out.stdout
    assert "1 failed" in out.stdout
    failures = ET.parse(junit).getroot().findall(".//failure")
    assert len(failures) == 1 and "expected state WATER_CHANGE_FILL" in failures[0].get("message")


def test_coverage_below_the_minimum_fails_and_names_what_was_missed(tmp_path):
    rules = _copy_rules(tmp_path)
    out = cli("test", str(rules / "tests" / "triggers.test.hydro"), "--coverage-min", "90")
    assert out.returncode == 1
    assert "below the minimum 90%" in out.stdout
    assert "transition never taken WATER_CHANGE_DRAIN → WATER_CHANGE_FILL" in out.stdout
    assert "state never reached water_cycle.FAILED" in out.stdout


def test_a_broken_test_file_is_reported_with_its_position(tmp_path):
    rules = _copy_rules(tmp_path)
    t = rules / "tests" / "safety.test.hydro"
    t.write_text(t.read_text().replace("expect at 40m alert biz_dry_run", "expect at 40m alert biz_dry_rum"))
    out = cli("test", str(t))
    assert out.returncode == 1
    assert "unknown alert `biz_dry_rum`" in out.stdout and "did you mean `biz_dry_run`?" in out.stdout
    assert "safety.test.hydro:" in out.stdout
    assert "Traceback" not in out.stderr


def test_series_respond_and_refused_expectations(tmp_path):
    rules = _copy_rules(tmp_path)
    (rules / "tests" / "extra.test.hydro").write_text("""hydro 1

test "a compact series drives the level down" {
  zone zn-t
  given {
    state WATER_CHANGE_DRAIN
  }
  series water_level "80-20x3 4" every 2m
  telemetry {
    at 0m ph 6.0 ec 1.4 mS/cm temp_water 21 °C
  }
  expect at 6m state WATER_CHANGE_DRAIN
  expect at 8m state WATER_CHANGE_FILL
}

test "a node that never answers is retried less and less" {
  zone zn-t
  telemetry {
    at 0m water_level 90% ph 6.0 ec 1.4 mS/cm temp_water 21 °C
  }
  respond pump_recirc never
  expect at 1h alert infra_node_offline channel pump_recirc
  expect at 1h refused pump_recirc guard can_run_pump reason "3 or more failed commands in the last hour"
}
""")
    out = cli("test", str(rules / "tests" / "extra.test.hydro"), "-k", "series")
    assert out.returncode == 0, out.stdout
    assert "1 passed" in out.stdout
    out = cli("test", str(rules / "tests" / "extra.test.hydro"))
    assert out.returncode == 0, out.stdout
    assert "2 passed" in out.stdout


def test_usage_errors_exit_2():
    assert cli("test", "/no/such/dir").returncode == 2
    assert cli("test", str(ROOT / "docs")).returncode == 2


def test_an_alert_expectation_compares_severity_and_source(tmp_path):
    rules = _copy_rules(tmp_path)
    t = rules / "tests" / "fields.test.hydro"
    body = """  zone zn-t
  telemetry {
    at 0m water_level 90% ph 6.0 temp_water 21 °C
  }
"""  # ec never reported: infra_sensor_stale (infra, critical) is raised
    t.write_text(
        "hydro 1\n\n"
        f'test "the declared fields match" {{\n{body}'
        "  expect at 10m alert infra_sensor_stale severity critical source infra\n}\n\n"
        f'test "another severity does not" {{\n{body}  expect at 10m alert infra_sensor_stale severity warning\n}}\n'
    )
    out = cli("test", str(t))
    assert out.returncode == 1, out.stdout
    assert "✓ the declared fields match" in out.stdout
    assert "✗ another severity does not" in out.stdout
    assert "got infra_sensor_stale (active, critical)" in out.stdout
    assert "1 passed, 1 failed" in out.stdout


def test_a_command_expectation_with_a_field_commands_lack_is_an_error(tmp_path):
    """A field commands do not have could never match, whatever the rules did: it is refused instead."""
    rules = _copy_rules(tmp_path)
    t = rules / "tests" / "fields.test.hydro"
    t.write_text(
        'hydro 1\n\ntest "a misspelt field" {\n  zone zn-t\n'
        "  telemetry {\n    at 0m water_level 90% ph 6.0 ec 1.4 mS/cm temp_water 21 °C\n  }\n"
        "  expect at 20m state NORMAL_RECIRC\n"
        "  expect at 20m command pump_recirc duration 600000\n}\n"
    )
    out = cli("test", str(t))
    assert out.returncode == 1
    assert "commands have no field `duration`" in out.stdout
    assert "did you mean `duration_ms`?" in out.stdout


DRAIN_TEST = """hydro 1

test "a drain with the twin" {
  zone zn-t
  given {
    state WATER_CHANGE_DRAIN
  }
  twin {
    seed 1
    fault leak at 0m with "rate=300"
  }
  expect at 10m command pump_drain cmd run_pump
}
"""


def _drain_case(tmp_path):
    from hydro_rules.testing.cases import load_file

    rules = _copy_rules(tmp_path)
    t = rules / "tests" / "drain.test.hydro"
    t.write_text(DRAIN_TEST)
    tf = load_file(t)
    assert not tf.loaded.diags.errors
    return tf.cases[0], tf.loaded.ruleset


def test_a_twin_test_steps_finely_while_the_drain_runs(tmp_path):
    """The expectation fails on purpose: its message says when the drain was switched off."""
    from hydro_rules.testing.runner import run_case

    case, rs = _drain_case(tmp_path)
    fine = run_case(case, rs, fine_tick=5.0)
    coarse = run_case(case, rs, fine_tick=None)
    assert fine.error is None and coarse.error is None
    [f] = fine.failures
    [c] = coarse.failures
    assert "got set_relay state no at" in f and "got set_relay state no at" in c
    at_fine = f.split(" at ")[-1].split(" (")[0]
    at_coarse = c.split(" at ")[-1].split(" (")[0]
    # the leak speeds the drain up: the level reaches empty between two ticks (2m35s against 3m with seed 1)
    assert at_fine.endswith("s") and not at_coarse.endswith("s") and at_fine < at_coarse, (at_fine, at_coarse)


def test_a_twin_test_runs_the_firmware_asked_for(tmp_path, monkeypatch):
    from hydro_rules.testing import runner

    case, rs = _drain_case(tmp_path)
    seen = []
    real = runner.ZoneTwin

    def spy(*args, **kw):
        twin = real(*args, **kw)
        seen.append(twin.firmware)
        return twin

    monkeypatch.setattr(runner, "ZoneTwin", spy)
    runner.run_case(case, rs)
    runner.run_case(case, rs, "bounded-off")
    assert seen == ["hydro2", "bounded-off"]
    assert "hydro2" in runner.run_case(case, rs, "hydro7").error


def test_the_test_command_takes_firmware(tmp_path):
    rules = _copy_rules(tmp_path)
    t = rules / "tests" / "drain.test.hydro"
    t.write_text(DRAIN_TEST.replace("expect at 10m command pump_drain cmd run_pump", "expect at 10m no event X_NOPE"))
    for fw in ("hydro2", "bounded-off"):
        out = cli("test", str(t), "--firmware", fw)
        assert "a drain with the twin" in out.stdout
    out = cli("test", str(t), "--firmware", "hydro1")
    assert out.returncode == 2 and "bounded-off" in out.stderr
