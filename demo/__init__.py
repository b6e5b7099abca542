"""The one-command demo: a backend, authsvc and nginx with the example site, on loopback."""
