"""edgeprof: on-device latency profiling and predictors for hardware-aware NAS (the CLI lives here)."""

__version__ = "0.1.0"
