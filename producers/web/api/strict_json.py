"""JSON bodies read strictly: a key twice in one object is refused, not "the last one wins".

Python's ``json`` (and so FastAPI) keeps the last of two equal keys without a word, so
``{"personnummer": "A", "personnummer": "B"}`` would send to B while a proxy, a log or the
integration's own tests read A. Every ``/v1`` route is a ``StrictJsonRoute``: the body is parsed
once, with a hook that refuses a repeated key (``duplicate-json-key``, 422), and FastAPI reads the
parsed value from the request's cache instead of parsing it again. The parser is
``contracts/strict_json.py``, which ``omvant push`` reads its lines with too.
"""

from __future__ import annotations

import email.message
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from contracts.strict_json import DuplicateKey, loads_strictly
from producers.web.problems import FieldError, problem_response
from workers.reasons import Reason


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True  # FastAPI reads a body without a content type as JSON
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class StrictJsonRoute(APIRoute):
    """A route whose JSON body may not repeat a key in any object."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            if request.method in {"POST", "PUT", "PATCH"} and _is_json(
                request.headers.get("content-type")
            ):
                body = await request.body()
                if body:
                    try:
                        parsed = loads_strictly(body)
                    except DuplicateKey as exc:
                        key = exc.key[:80]
                        return problem_response(
                            request,
                            422,
                            Reason.DUPLICATE_JSON_KEY,
                            f"the key {key!r} appears twice in one object of the body",
                            errors=[
                                FieldError(
                                    field=key,
                                    rule="duplicate-key",
                                    message="each key at most once per object",
                                )
                            ],
                        )
                    except (ValueError, RecursionError):
                        pass  # not JSON, or nested past the parser: FastAPI's reading refuses it
                    else:
                        request._json = parsed  # Starlette's cache of request.json()
            return await handler(request)

        return strict
