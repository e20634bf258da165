"""`hydro-rules demo SITE --json`: service, daemon and simulated nodes in one process; the summary CI reads."""

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import SITE

#: the test site's fast pumps (as tests/daemon/conftest.TWIN)
FAST = ["--twin", "fill_flow_l_min=60", "--twin", "drain_flow_l_min=60"]


def test_demo_runs_a_water_change_and_leaves_no_command_open(fresh_database, mqtt_url):
    env = {**os.environ, "HYDRO_DATABASE_URL": fresh_database("hydro_demo"), "HYDRO_MQTT_URL": mqtt_url}
    exe = Path(sys.executable).with_name("hydro-rules")
    try:
        done = subprocess.run(
            [str(exe), "demo", str(SITE), "--duration", "10s", "--json", *FAST],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired as e:  # say where it stood
        said = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else str(e.stderr)
        raise AssertionError(f"the demo did not end within 120 s; it said:\n{said[-4000:]}") from None
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["commands_open"] == 0
    assert summary["commands"].get("done", 0) > 0 and summary["commands_acknowledged"] > 0
    assert summary["samples_stored"] > 0
    assert any("WATER_CHANGE_DRAIN" in t["summary"] for t in summary["transitions"] if t["zone"] == "zt-1")
    assert summary["nodes"]["commands_accepted"] > 0
    # the demo stops its own daemon to let the last commands end: what the dead-man says then is not the run's
    assert "infra_service_down_daemon" not in {a["code"] for a in summary["alerts"]}
    # the commentary went to stderr while stdout carried the summary
    assert "command" in done.stderr and "pump_drain run_pump" in done.stderr


def test_demo_refuses_a_bad_fault(tmp_path):
    exe = Path(sys.executable).with_name("hydro-rules")
    done = subprocess.run(
        [str(exe), "demo", str(SITE), "--fault", "nonsense@1m"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "nonsense" in done.stderr
