"""Signed-in sessions: a random token in a signed, HttpOnly, SameSite=Lax cookie (Secure over
https), its sha256 in ``web_sessions``; and the CSRF token every form carries.

The token is unguessable on its own; the signature (itsdangerous, keyed by
``OMVANT_WEB_SECRET``) lets a forged or altered cookie be refused before the database is
asked. A session ends at sign-out, when the user is disabled, after ``web_idle_minutes``
without a request and ``web_session_hours`` after sign-in.

CSRF: the token is an HMAC of the session (or, before sign-in, of a random signed cookie of
its own), so it needs no storage and is bound to the one browser; every POST must carry it as
the form field ``csrf_token`` or the header ``X-CSRF-Token``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from itsdangerous import BadSignature, Signer
from starlette.requests import Request
from starlette.responses import Response

from producers.web.console_settings import WebSettings
from workers.store import users
from workers.store.cases import utcnow
from workers.store.schema import web_sessions
from workers.store.sql import aware_utc

SESSION_COOKIE = "omvant_session"
ANON_COOKIE = "omvant_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_SEEN_EVERY = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Session:
    """A live session and its user."""

    token_hash: str
    user: users.User
    clinic_hsa_id: str | None
    expires_at: dt.datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionManager:
    """Makes, finds and ends sessions, and the CSRF tokens bound to them."""

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self._signer = Signer(settings.web_secret, salt="omvant-session")
        self._key = hashlib.sha256(("csrf:" + settings.web_secret).encode()).digest()

    # cookies -----------------------------------------------------------------------------
    def secure(self, request: Request) -> bool:
        """Whether cookies get the ``Secure`` flag for this request."""
        mode = self.settings.web_cookie_secure
        return mode == "always" or (mode == "auto" and request.url.scheme == "https")

    def _set(
        self, response: Response, request: Request, name: str, value: str, max_age: int | None
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            httponly=True,
            samesite="lax",
            secure=self.secure(request),
            path="/",
        )

    def _unsign(self, raw: str | None) -> str | None:
        if not raw:
            return None
        try:
            return self._signer.unsign(raw).decode()
        except BadSignature:
            return None

    # sessions ----------------------------------------------------------------------------
    def start(
        self, conn: sa.Connection, request: Request, response: Response, user: users.User
    ) -> None:
        """Sign ``user`` in: a fresh session (never one the browser had before: no fixation)."""
        old = self._unsign(request.cookies.get(SESSION_COOKIE))
        if old is not None:
            conn.execute(sa.delete(web_sessions).where(web_sessions.c.token_hash == _digest(old)))
        token = secrets.token_urlsafe(32)
        now = utcnow()
        expires = now + dt.timedelta(hours=self.settings.web_session_hours)
        conn.execute(
            web_sessions.insert().values(
                token_hash=_digest(token),
                user_id=user.id,
                clinic_hsa_id=user.clinics[0] if user.clinics else None,
                created_at=now,
                seen_at=now,
                expires_at=expires,
            )
        )
        max_age = int(self.settings.web_session_hours * 3600)
        self._set(response, request, SESSION_COOKIE, self._signer.sign(token).decode(), max_age)

    def find(self, conn: sa.Connection, request: Request) -> Session | None:
        """The request's live session, or None (no cookie, forged, expired, idle, disabled)."""
        token = self._unsign(request.cookies.get(SESSION_COOKIE))
        if token is None:
            return None
        digest = _digest(token)
        row = conn.execute(
            sa.select(web_sessions).where(web_sessions.c.token_hash == digest)
        ).first()
        if row is None:
            return None
        now = utcnow()
        idle = dt.timedelta(minutes=self.settings.web_idle_minutes)
        if aware_utc(row.expires_at) <= now or aware_utc(row.seen_at) + idle <= now:
            conn.execute(sa.delete(web_sessions).where(web_sessions.c.token_hash == digest))
            return None
        user = users.by_id(conn, row.user_id)
        if user is None or not user.active:
            conn.execute(sa.delete(web_sessions).where(web_sessions.c.token_hash == digest))
            return None
        if aware_utc(row.seen_at) + _SEEN_EVERY <= now:
            conn.execute(
                sa.update(web_sessions)
                .where(web_sessions.c.token_hash == digest)
                .values(seen_at=now)
            )
        clinic = row.clinic_hsa_id if row.clinic_hsa_id in user.clinics else None
        if clinic is None and user.clinics:
            clinic = user.clinics[0]
        return Session(digest, user, clinic, aware_utc(row.expires_at))

    def choose_clinic(self, conn: sa.Connection, session: Session, clinic_hsa_id: str) -> bool:
        """Act for another of the user's clinics; False if the user does not act for it."""
        if not session.user.acts_for(clinic_hsa_id):
            return False
        conn.execute(
            sa.update(web_sessions)
            .where(web_sessions.c.token_hash == session.token_hash)
            .values(clinic_hsa_id=clinic_hsa_id)
        )
        return True

    def end(self, conn: sa.Connection, request: Request, response: Response) -> None:
        """Sign out: the session row goes, and the cookie with it."""
        token = self._unsign(request.cookies.get(SESSION_COOKIE))
        if token is not None:
            conn.execute(sa.delete(web_sessions).where(web_sessions.c.token_hash == _digest(token)))
        response.delete_cookie(SESSION_COOKIE, path="/")

    # CSRF --------------------------------------------------------------------------------
    def _mac(self, bound_to: str) -> str:
        return hmac.new(self._key, bound_to.encode(), hashlib.sha256).hexdigest()

    def csrf_token(self, request: Request, session: Session | None) -> str:
        """The token forms must carry: bound to the session, or to the anonymous cookie."""
        if session is not None:
            return self._mac("s:" + session.token_hash)
        anon = self.anonymous_id(request)
        return self._mac("a:" + anon)

    def anonymous_id(self, request: Request) -> str:
        """The browser's anonymous CSRF id (made on first sight, kept in request.state)."""
        known = getattr(request.state, "anonymous_id", None)
        if known:
            return str(known)
        found = self._unsign(request.cookies.get(ANON_COOKIE))
        if found is None:
            found = secrets.token_urlsafe(16)
            request.state.new_anonymous_id = found
        request.state.anonymous_id = found
        return found

    def remember_anonymous(self, request: Request, response: Response) -> None:
        """Set the anonymous CSRF cookie if this request made a new one."""
        new = getattr(request.state, "new_anonymous_id", None)
        if new:
            self._set(response, request, ANON_COOKIE, self._signer.sign(new).decode(), None)

    def csrf_valid(self, request: Request, session: Session | None, sent: str | None) -> bool:
        """Whether ``sent`` is the token this browser's forms carry."""
        if not sent:
            return False
        if session is not None:
            expected = self._mac("s:" + session.token_hash)
        else:
            anon = self._unsign(request.cookies.get(ANON_COOKIE))
            if anon is None:
                return False
            expected = self._mac("a:" + anon)
        return hmac.compare_digest(expected, sent)
