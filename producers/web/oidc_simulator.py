"""A small OpenID Connect provider for tests and trials (``omvant sim oidc`` is not needed:
tests start it in a thread). It speaks the real protocol: discovery, the authorization
endpoint (it signs in ``subject`` at once and redirects back with a code), the token endpoint
(an RS256 ID token with the nonce, checked by the client against ``/jwks``).
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route


@dataclass
class OidcProviderSimulator:
    """The provider; ``subject`` is who is signed in there."""

    client_id: str = "omvant-console"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    subject: str = "oidc-subject-1"
    port: int = 0
    _codes: dict[str, dict[str, str]] = field(default_factory=dict)
    _server: Any = None
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        from authlib.jose import JsonWebKey

        self._key = JsonWebKey.generate_key("RSA", 2048, is_private=True)
        self._key_id = secrets.token_hex(4)

    @property
    def issuer(self) -> str:
        """The provider's issuer URL."""
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> Starlette:
        """The provider's endpoints."""

        async def discovery(_request: Request) -> Response:
            return JSONResponse(
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self.issuer}/token",
                    "jwks_uri": f"{self.issuer}/jwks",
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                }
            )

        async def jwks(_request: Request) -> Response:
            public = self._key.as_dict(is_private=False)
            public.update(kid=self._key_id, use="sig", alg="RS256")
            return JSONResponse({"keys": [public]})

        async def authorize(request: Request) -> Response:
            q = request.query_params
            if q.get("client_id") != self.client_id or q.get("response_type") != "code":
                return JSONResponse({"error": "invalid_request"}, status_code=400)
            code = secrets.token_urlsafe(16)
            self._codes[code] = {"nonce": q.get("nonce", ""), "redirect_uri": q["redirect_uri"]}
            query = urlencode({"code": code, "state": q.get("state", "")})
            return RedirectResponse(f"{q['redirect_uri']}?{query}", status_code=302)

        async def token(request: Request) -> Response:
            from authlib.jose import jwt

            form = await request.form()
            grant = self._codes.pop(str(form.get("code")), None)
            if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            sent_id = form.get("client_id")
            auth = request.headers.get("authorization", "")
            if sent_id not in (None, self.client_id) or not (auth or form.get("client_secret")):
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            now = int(time.time())
            claims = {
                "iss": self.issuer,
                "sub": self.subject,
                "aud": self.client_id,
                "iat": now,
                "exp": now + 300,
                "nonce": grant["nonce"],
                "preferred_username": self.subject,
            }
            id_token = jwt.encode({"alg": "RS256", "kid": self._key_id}, claims, self._key)
            return JSONResponse(
                {
                    "access_token": secrets.token_urlsafe(16),
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "id_token": id_token.decode(),
                }
            )

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/jwks", jwks),
                Route("/authorize", authorize),
                Route("/token", token, methods=["POST"]),
            ]
        )

    def start(self) -> OidcProviderSimulator:
        """Serve on a loopback port in a thread."""
        import uvicorn

        if not self.port:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
