"""The ASGI application of ``omvant serve``: the HTTP API (``/v1``), probes and the web console."""
