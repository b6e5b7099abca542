"""Serving: the ASGI app, the worker and the gunicorn server. Bytes in, bytes out."""
