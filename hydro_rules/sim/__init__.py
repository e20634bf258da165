"""Dry runs: the engine against the digital twin in accelerated time."""
