"""`hydro-rules test`: rule unit tests agronomists can read."""
