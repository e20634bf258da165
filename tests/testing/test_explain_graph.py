"""`explain` and `graph` on the demo site."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "hydro_rules", *args],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_explain_at_the_scheduled_water_change(snapshot):
    out = cli("explain", str(ROOT / "examples"), "--zone", "zn-1", "--at", "7d9h")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "water_cycle is in NORMAL_RECIRC" in text
    assert "✓ holds" in text and "NORMAL_RECIRC → WATER_CHANGE_DRAIN" in text
    assert "every 7d at 09:00" in text and ": due" in text
    assert text == snapshot


def test_explain_shows_a_stale_reading():
    out = cli(
        "explain", str(ROOT / "examples"), "--zone", "zn-1", "--at", "3d2h", "--fault", "sensor_dead@3d:water_level"
    )
    assert out.returncode == 0, out.stderr
    assert "water_level" in out.stdout and "older than its limit 3m" in out.stdout


def test_explain_shows_a_guard_keeping_a_pump_off():
    """A dead level sensor alone no longer keeps the NC pump off (its flow and current show it moving water):
    an empty reservoir does."""
    out = cli("explain", str(ROOT / "examples"), "--zone", "zn-1", "--at", "3d2h", "--fault", "dry_reservoir@3d")
    assert out.returncode == 0, out.stderr
    assert 'reservoir_has_water  deny "water level below the dry-run minimum"' in out.stdout
    assert "levels.min = 15%) — keeps it off" in out.stdout


def test_explain_needs_a_zone_on_a_site_with_several():
    out = cli("explain", str(ROOT / "examples"), "--at", "1d")
    assert out.returncode == 2 and "--zone" in out.stderr


def test_graph_mermaid_and_dot(snapshot):
    mermaid = cli("graph", str(ROOT / "rules"))
    assert mermaid.returncode == 0
    assert mermaid.stdout.startswith("stateDiagram-v2")
    assert "WATER_CHANGE_DRAIN --> FAILED: timeout 30m" in mermaid.stdout
    dot = cli("graph", str(ROOT / "rules"), "--dot")
    assert dot.returncode == 0 and dot.stdout.startswith("digraph rules {")
    assert '"WATER_CHANGE_FILL" -> "FAILED" [label="timeout 30m", style=dashed, color=red];' in dot.stdout
    assert (mermaid.stdout, dot.stdout) == snapshot
