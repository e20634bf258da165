"""In CI (`CI=true`), a storage or messaging test that skips fails the run.

Those tests need PostgreSQL and Mosquitto; tests/conftest.py starts throwaway ones when it can
and skips when it cannot. On a developer's machine that is a convenience; in CI a skip would
show green while the whole storage and messaging layer went untested. A test counts as one
when it uses a service fixture (`pg_server`, `mqtt_url`, or any fixture built on them) or lives
in a directory of them. Imported by tests/conftest.py (and by test_ci_skips.py's own runs).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SERVICE_FIXTURES = frozenset({"pg_server", "mqtt_url"})
SERVICE_DIRS = frozenset({"store", "service", "transport", "daemon", "nodesim"})


def in_ci(env=os.environ) -> bool:
    return env.get("CI", "").strip().lower() in ("true", "1", "yes")


def needs_services(item) -> bool:
    if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    parts = Path(str(item.path)).parts
    return "tests" in parts and parts[parts.index("tests") + 1] in SERVICE_DIRS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and in_ci() and needs_services(item):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = (
            f"in CI: this storage or messaging test was skipped ({reason}). In CI the services must run: "
            "install PostgreSQL (initdb, pg_ctl) and mosquitto, or set HYDRO_DATABASE_URL / HYDRO_MQTT_URL."
        )
