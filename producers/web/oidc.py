"""Optional sign-in through the organisation's OpenID Connect provider (authlib).

Configured by ``OMVANT_OIDC_ISSUER``, ``OMVANT_OIDC_CLIENT_ID`` and ``OMVANT_OIDC_CLIENT_SECRET``
(the provider's ``/.well-known/openid-configuration`` is read). The code flow with state and
nonce; the ID token is checked by authlib against the provider's keys. A console user is
linked to the provider's subject (``omvant users add --oidc-subject SUB``): only a linked,
active user is signed in, so the provider proves who someone is and Omvänt decides what they
may do (roles, clinics).
"""

from __future__ import annotations

from typing import Any

from producers.web.console_settings import WebSettings

CLIENT_NAME = "oidc"


def build_oauth(web: WebSettings) -> Any | None:
    """The authlib registry with the provider, or None when OIDC is not configured."""
    if not web.oidc_enabled:
        return None
    from authlib.integrations.starlette_client import OAuth

    oauth = OAuth()
    issuer = str(web.oidc_issuer).rstrip("/")
    oauth.register(
        CLIENT_NAME,
        client_id=web.oidc_client_id,
        client_secret=web.oidc_client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile"},
    )
    return oauth
