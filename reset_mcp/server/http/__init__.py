"""HTTP: the ASGI app, REST routes, API-key auth, metrics, worker processes."""
