"""The request size limit of the HTTP API, enforced before a route sees the body.

A body announced (``Content-Length``) or streamed past the limit is answered with 413
``request-too-large`` without reading the rest; at most the limit is ever held in memory.
Only ``/v1`` is limited here: the web console's forms have their own limits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producers.web.problems import problem_response
from workers.reasons import Reason

Limit = Callable[[str], int]


class BodyLimitMiddleware:
    """Refuse ``/v1`` requests whose body is larger than ``limit(path)`` bytes."""

    def __init__(self, app: ASGIApp, *, limit: Limit) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1"):
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope["path"])
        headers = dict(scope.get("headers") or [])
        announced = headers.get(b"content-length")
        if announced is not None and announced.isdigit() and int(announced) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; let the app see it
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, receive, send, limit)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem_response(
            Request(scope),
            413,
            Reason.REQUEST_TOO_LARGE,
            f"the body is over the limit of {limit:,} bytes",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def limit_for(settings: Any) -> Limit:
    """The limit of each path: attachments take one file and its form, the rest JSON."""

    def limit(path: str) -> int:
        if path.startswith("/v1/attachments"):
            return int(settings.max_attachment_bytes) + 64 * 1024
        return int(settings.api_max_body_bytes)

    return limit
