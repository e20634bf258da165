"""The rule engine: compiled rules evaluated against a zone's state, telemetry and time.

It does no I/O and reads no clock: `now` is an argument.
"""
