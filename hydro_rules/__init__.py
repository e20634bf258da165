"""hydro-rules: declarative control of closed-loop hydroponic sites."""

__version__ = "0.1.0"
