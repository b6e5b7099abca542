"""The pure check: credentials in, a verdict with a reason code out. No HTTP, no environment."""
