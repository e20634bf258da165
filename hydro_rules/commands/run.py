"""`hydro-rules run SITE`: the site daemon, the rule engine driving the site's nodes."""

from __future__ import annotations

from ..cli import EXIT_OK, EXIT_PROBLEMS, UsageError


def register(sub) -> None:
    p = sub.add_parser(
        "run",
        help="run the site daemon: evaluate every zone each tick and command its nodes over MQTT",
        description="Run the rule set of a site against its nodes: read telemetry, decide, send signed "
        "commands, keep the decision log. Refuses to start on a rule set with errors. Runs beside `serve`; "
        "several daemons share the site's zones. SIGHUP (or a changed rule file) reloads the rules.",
    )
    p.add_argument("site", metavar="SITE", help="rule-set directory with the site")
    p.add_argument("--config", metavar="FILE", help="TOML file with a [daemon] table (see runtime/hydro-rules.toml)")
    p.add_argument("--database-url", metavar="URL", help="PostgreSQL URL (default $HYDRO_DATABASE_URL)")
    p.add_argument("--mqtt-url", metavar="URL", help="broker URL mqtt://host:port (default $HYDRO_MQTT_URL)")
    p.add_argument("--log-format", choices=("text", "json"), help="log lines as text (default) or JSON objects")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(run=_run)


def _run(args) -> int:
    from ..daemon.config import DaemonSettings
    from ..daemon.daemon import Daemon
    from ..service.clitools import run, setup_logging
    from ..service.config import ConfigError, load_settings
    from ._common import err_console, load_site

    overrides = {"database_url": args.database_url, "mqtt_url": args.mqtt_url, "log_format": args.log_format}
    try:
        settings = load_settings(args.config, model=DaemonSettings, table="daemon", **overrides)
    except ConfigError as e:
        raise UsageError(str(e)) from e
    try:
        loaded = load_site(args.site, err_console())  # its errors are printed
    except UsageError as e:
        if "has errors" not in str(e):
            raise
        err_console().print(f"hydro-rules run: refusing to start: {e}", markup=False)
        return EXIT_PROBLEMS
    setup_logging(args.verbose, settings.log_format)
    daemon = Daemon(settings, args.site, ruleset=loaded.ruleset)
    run(daemon.run_forever())
    return EXIT_OK
