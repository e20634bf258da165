"""`hydro-rules run`: refuses a rule set with errors (exit 1, the diagnostic printed); logs as JSON on request;
its settings come from the [daemon] table, HYDRO_* variables and options."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from hydro_rules.daemon.config import DaemonSettings
from hydro_rules.daemon.log import JsonFormatter
from hydro_rules.service.config import ConfigError, load_settings

from .conftest import site_copy

EXE = str(Path(sys.executable).with_name("hydro-rules"))


def test_a_site_with_errors_is_refused_with_the_diagnostic_and_exit_1(tmp_path):
    site = site_copy(tmp_path / "site")
    (site / "site.hydro").write_text((site / "site.hydro").read_text() + "\nguard bad { nonsense }\n")
    done = subprocess.run(
        [EXE, "run", str(site), "--database-url", "postgresql://nobody@127.0.0.1:1/none"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "error[HR003]" in done.stderr and "site.hydro:" in done.stderr
    assert "refusing to start" in done.stderr


def test_a_path_that_is_no_rule_set_is_a_usage_error(tmp_path):
    done = subprocess.run([EXE, "run", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not a rule-set directory" in done.stderr


def test_settings_come_from_the_daemon_table_the_environment_and_options(tmp_path):
    cfg = tmp_path / "hydro.toml"
    cfg.write_text('[service]\nhttp_port = 1\n[daemon]\ntick_s = 0.5\ndaemon_id = "a"\nlog_format = "json"\n')
    s = load_settings(cfg, {"HYDRO_DAEMON_ID": "b"}, model=DaemonSettings, table="daemon", mqtt_url="mqtt://x:1")
    assert (s.tick_s, s.daemon_id, s.log_format, s.mqtt_url) == (0.5, "b", "json", "mqtt://x:1")
    assert s.mqtt_client_id == "hydro-daemon" and s.metrics_port == 9108 and s.max_zones is None
    login = load_settings(None, {}, model=DaemonSettings, table="daemon", mqtt_url="mqtt://hd:pw@x:1")
    assert login.mqtt_client_id == "hd"
    cfg.write_text("[daemon]\ntick = 1\n")
    with pytest.raises(ConfigError, match="tick"):
        load_settings(cfg, {}, model=DaemonSettings, table="daemon")


def test_json_log_lines_are_one_object_each():
    record = logging.LogRecord("hydro_rules.daemon", logging.WARNING, __file__, 1, "zone %s dropped", ("zt-1",), None)
    record.zone = "zt-1"
    line = JsonFormatter().format(record)
    doc = json.loads(line)
    assert "\n" not in line
    assert doc["level"] == "warning" and doc["message"] == "zone zt-1 dropped" and doc["zone"] == "zt-1"
    assert doc["logger"] == "hydro_rules.daemon" and doc["ts"].endswith("+00:00")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    doc = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in doc["exception"]
