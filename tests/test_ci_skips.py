"""CI=true turns a skipped storage or messaging test into a failure; other skips stay skips.

Runs pytest in a subprocess on a small suite whose service fixtures skip, as tests/conftest.py's
do when neither PostgreSQL nor Mosquitto can be had, with the hook of ci_policy.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

CONFTEST = """
import pytest
from ci_policy import pytest_runtest_makereport  # noqa: F401


@pytest.fixture
def pg_server():
    pytest.skip("no PostgreSQL: set HYDRO_DATABASE_URL or install the server (initdb, pg_ctl)")


@pytest.fixture
def db(pg_server):
    return pg_server


@pytest.fixture
def mqtt_url():
    pytest.skip("no MQTT broker: set HYDRO_MQTT_URL or install mosquitto")
"""

SUITE = """
import pytest


def test_storage(db):
    pass


def test_messaging(mqtt_url):
    pass


@pytest.mark.skip(reason="not today")
def test_engine_skip():
    pass


@pytest.mark.xfail(reason="known")
def test_known_failure():
    assert False


def test_engine():
    pass
"""


def run(tmp_path: Path, ci: str | None) -> tuple[int, dict[str, str], str]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_suite.py").write_text(SUITE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    if ci is not None:
        env["CI"] = ci
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "-p", "no:xdist", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outcomes = {test: word for word, test in re.findall(r"^(PASSED|FAILED|ERROR|XFAIL) \S+::(\w+)", r.stdout, re.M)}
    skipped = re.findall(r"^SKIPPED \[\d+\] \S+: (.*)$", r.stdout, re.M)
    return r.returncode, {**outcomes, "skips": str(len(skipped))}, r.stdout


@pytest.mark.parametrize("ci", ["true", "1"])
def test_in_ci_a_skipped_storage_or_messaging_test_fails_the_run(tmp_path, ci):
    code, outcomes, out = run(tmp_path, ci)
    assert code == 1, out
    assert outcomes["test_storage"] == "ERROR" and outcomes["test_messaging"] == "ERROR", out
    assert "in CI: this storage or messaging test was skipped (no PostgreSQL" in out
    assert outcomes["test_engine"] == "PASSED" and outcomes["test_known_failure"] == "XFAIL", out
    assert outcomes["skips"] == "1", "a skip outside storage and messaging stays a skip"


@pytest.mark.parametrize("ci", [None, "false"])
def test_outside_ci_they_skip(tmp_path, ci):
    code, outcomes, out = run(tmp_path, ci)
    assert code == 0, out
    assert outcomes["skips"] == "3" and outcomes["test_engine"] == "PASSED", out
