"""The web console's own settings (``OMVANT_WEB_*``, ``OMVANT_OIDC_*``)."""

from __future__ import annotations

import secrets
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebSettings(BaseSettings):
    """How the console signs cookies, how long sessions last, and the optional OIDC login."""

    model_config = SettingsConfigDict(env_prefix="OMVANT_", extra="ignore")

    web_secret: str = Field(default_factory=lambda: secrets.token_urlsafe(32), min_length=16)
    """Key that signs session and CSRF cookies. Set it (the same in every process) in
    production; unset, each process makes one, so sessions end when it restarts."""
    web_cookie_secure: Literal["auto", "always", "never"] = "auto"
    """``Secure`` cookies: ``auto`` when the request came over https (behind a proxy, run
    uvicorn with ``--proxy-headers``), ``always``, or ``never``."""
    web_session_hours: float = Field(default=8.0, gt=0, le=24 * 7)
    """A session ends this long after sign-in, whatever happens."""
    web_idle_minutes: float = Field(default=60.0, gt=0)
    """A session ends after this long without a request."""
    web_account_failures: int = Field(default=5, ge=1)
    """Failed sign-ins to one account before it is locked (with growing back-off)."""
    web_ip_failures: int = Field(default=20, ge=1)
    """Failed sign-ins from one address before it is locked (with growing back-off)."""
    web_page_size: int = Field(default=50, ge=5, le=1000)
    """Cases per page in the clinic's list."""
    oidc_issuer: str | None = None
    """OIDC provider (its ``/.well-known/openid-configuration`` is read); unset: no OIDC."""
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_username_claim: str = "preferred_username"
    """The claim that names the console user when no user is linked to the OIDC subject."""

    @property
    def oidc_enabled(self) -> bool:
        """Whether OIDC sign-in is configured."""
        return bool(self.oidc_issuer and self.oidc_client_id)
