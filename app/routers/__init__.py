"""HTTP routers: parse the request, hand the work to :mod:`app.services` in the thread pool."""
