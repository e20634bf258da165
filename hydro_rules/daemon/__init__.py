"""The site daemon (`hydro-rules run`): the rule engine driving real nodes over MQTT."""

from __future__ import annotations

__all__ = ["Daemon", "DaemonSettings"]


def __getattr__(name: str):
    # lazily: the dry run imports nothing of the daemon's database and broker stack through this package
    if name == "Daemon":
        from .daemon import Daemon

        return Daemon
    if name == "DaemonSettings":
        from .config import DaemonSettings

        return DaemonSettings
    raise AttributeError(name)
