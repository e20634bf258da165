"""Throwaway PostgreSQL and Mosquitto servers for tests and benchmarks.

Each lives in a temporary directory on a free loopback port and is removed on
`stop()`. They let the test suite pass on a machine without the system
services, and let tests restart a server mid-stream without touching the
services other people use.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_port(port: int, timeout: float, up: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reachable("127.0.0.1", port, 0.2) == up:
            return
        time.sleep(0.02)
    raise TimeoutError(f"port {port} did not {'open' if up else 'close'} within {timeout} s")


def _pg_bindir() -> Path | None:
    if shutil.which("initdb"):
        return Path(shutil.which("initdb")).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def postgres_available() -> bool:
    return _pg_bindir() is not None


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temp dir: trust auth, user `postgres`, fsync off.

    initdb refuses to run as root, so as root everything runs as the `postgres`
    system user (runuser).
    """

    def __init__(self, port: int | None = None) -> None:
        bindir = _pg_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.bindir = bindir
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="hydro-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as an unprivileged system user
            user = next((u for u in ("postgres", "nobody") if _user_exists(u)), None)
            if user is None or shutil.which("runuser") is None:
                raise RuntimeError("as root, starting PostgreSQL needs runuser and a `postgres` or `nobody` user")
            pw = pwd.getpwnam(user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._as_user = ["runuser", "-u", user, "--"]

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [*self._as_user, *args]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> ThrowawayPostgres:
        if not self.data.exists():
            self._run(
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            )
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "start")
        _wait_port(self.port, 15)
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (the data stays until `remove`)."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.remove()


def broker_sizing(conf: Path) -> str:
    """The queue and in-flight limits of a Mosquitto configuration (the deployment kit's), as
    `extra` lines for a throwaway broker sized like a site's; empty when the file is missing."""
    if not conf.is_file():
        return ""
    return "\n".join(line for line in conf.read_text().splitlines() if re.match(r"^\s*(max_|persistent_client)", line))


class ThrowawayMosquitto:
    """A Mosquitto broker on a free port with on-disk persistence in a temp dir.

    `extra` lines are appended to the generated configuration (e.g. the
    runtime kit's in-flight and queue sizes). `stop()` sends SIGTERM, so the
    broker saves its sessions and a restart on the same port resumes them.
    """

    def __init__(self, port: int | None = None, extra: str = "") -> None:
        if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
            raise RuntimeError("mosquitto not found")
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="hydro-mqtt-"))
        self.conf = self.root / "mosquitto.conf"
        self.log = self.root / "mosquitto.log"
        self.proc: subprocess.Popen | None = None
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.root}/",
            f"log_dest file {self.log}",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n" + extra + "\n")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> ThrowawayMosquitto:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_port(self.port, 10)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        _wait_port(self.port, 5, up=False)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ThrowawayMosquitto:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.remove()
