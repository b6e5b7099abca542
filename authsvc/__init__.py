"""authsvc: Approov token verification in front of any HTTP backend."""

__version__ = "0.1.0"
