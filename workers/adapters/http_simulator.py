"""What every HTTP simulator of an outside system does with its server: serve it in a background
thread (or this one), give its base URL, stop it and release the port."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Self


class ServedInThread:
    """Start, serve and stop of a simulator's ``ThreadingHTTPServer`` (``self._httpd``)."""

    _httpd: ThreadingHTTPServer
    _thread: threading.Thread | None = None
    thread_name = "http-simulator"

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the server."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
