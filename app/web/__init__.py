"""HTTP: routers, dependencies, error handlers and templating. Never imports torch."""
