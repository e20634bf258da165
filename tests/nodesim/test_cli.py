"""`hydro-rules nodes simulate`: options, and a short run on the broker."""

from __future__ import annotations

import json

from hydro_rules.cli import EXIT_USAGE, main

from .conftest import SECRET

NODES = ("nd-pump-1", "nd-drain-1", "nd-fill-1", "nd-dose-1", "nd-level-1", "nd-ph-1", "nd-ec-1")


def test_a_short_run_prints_its_counters(mqtt_url, capsys):
    secrets = [a for uid in NODES for a in ("--secret", f"{uid}={SECRET}")]
    argv = ["nodes", "simulate", "examples", "--zone", "zn-1", "--mqtt-url", mqtt_url, "--duration", "2s"]
    rc = main([*argv, *secrets, "--twin", "fill_flow_l_min=60", "--fault", "reboot@1s:nd-ph-1", "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    counters = json.loads(out.out)
    assert counters["telemetry_sent"] > 0 and counters["reboots"] == 1


def test_bad_options_are_usage_errors(mqtt_url, capsys):
    base = ["nodes", "simulate", "examples", "--mqtt-url", mqtt_url, "--secret", f"nd-ph-1={SECRET}"]
    assert main([*base, "--zone", "zn-9"]) == EXIT_USAGE
    assert "no zone 'zn-9'" in capsys.readouterr().err
    assert main([*base, "--twin", "pump_speed=3"]) == EXIT_USAGE
    assert "not a twin setting" in capsys.readouterr().err
    assert (
        main([*base, "--fault", "stuck_relay@1m:pump_nowhere", "--database-url", "postgresql://x@127.0.0.1:1/x"])
        == EXIT_USAGE
    )
    assert "pump_nowhere" in capsys.readouterr().err
