"""The rule language: parsing, checking, formatting."""
