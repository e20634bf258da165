"""`hydro-rules serve --site PATH`: the ingest service (HTTP, MQTT, aggregator) for a site."""

from __future__ import annotations

from ..cli import EXIT_OK
from ..service.clitools import add_config_options, run, settings_from, setup_logging


def register(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="run the ingest service: HTTP API, MQTT subscriber and aggregator",
        description="Run the single writer of telemetry, commands and alerts for a site. It syncs the site's "
        "zones and nodes into the database, then serves HTTP and subscribes to the node topics.",
    )
    p.add_argument("--site", required=True, metavar="PATH", help="rule-set directory with the site")
    p.add_argument("--no-sync", action="store_true", help="do not store the site's zones and nodes at start")
    p.add_argument("-v", "--verbose", action="store_true")
    add_config_options(p, mqtt=True, http=True)
    p.set_defaults(run=_run)


def _run(args) -> int:
    from ..service.app import Service, serve
    from ._common import load_site

    settings = settings_from(args)
    if args.no_mqtt:
        settings = settings.model_copy(update={"mqtt_url": None})
    loaded = load_site(args.site)
    setup_logging(args.verbose)
    service = Service(settings, loaded.ruleset, sync_sites=not args.no_sync)
    run(serve(service))
    return EXIT_OK
