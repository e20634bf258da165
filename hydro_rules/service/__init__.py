"""The ingest service: one core behind the HTTP and MQTT doors, commands, the aggregator."""
