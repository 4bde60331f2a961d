"""Which SMS gateway, e-mail sender and rate limiter a process uses, from its settings."""

from __future__ import annotations

from workers.adapters.notifiers import (
    ChannelRateLimits,
    EmailSender,
    SimulatedEmailSender,
    SimulatedSmsGateway,
    SmsGateway,
)
from workers.rate_limit import in_process_limiter, redis_limiter
from workers.settings import Settings

MAX_WAIT = 60.0
"""Seconds a send waits for its turn before the case is retried later: many worker threads
share one budget (16 threads against 50 SMS/s wait about a third of a second each)."""


def build_sms_gateway(settings: Settings) -> SmsGateway:
    """The HTTP gateway when ``sms_gateway_url`` is set, else the simulated one."""
    if settings.sms_gateway_url:
        from workers.adapters.http_sms_gateway import HttpSmsGateway

        return HttpSmsGateway(
            settings.sms_gateway_url,
            timeout=settings.notifier_timeout_seconds,
            max_batch=settings.sms_batch_size,
        )
    return SimulatedSmsGateway(settings.sim_outbox)


def build_email_sender(settings: Settings) -> EmailSender:
    """The HTTP e-mail API when ``email_api_url`` is set (it wins over ``smtp_url``: it can be
    asked about an in-doubt e-mail), else SMTP when ``smtp_url`` is set, else the simulated
    sender."""
    if settings.email_api_url:
        from workers.adapters.http_email_api import HttpEmailApi

        token = settings.email_api_token.get_secret_value() if settings.email_api_token else ""
        return HttpEmailApi(
            settings.email_api_url,
            token=token or None,  # compose passes an unset token as ""
            timeout=settings.notifier_timeout_seconds,
        )
    if settings.smtp_url:
        from workers.adapters.smtp_email import SmtpConfig, SmtpEmailSender

        return SmtpEmailSender(
            SmtpConfig.from_url(settings.smtp_url),
            sender=settings.smtp_from,
            timeout=settings.notifier_timeout_seconds,
        )
    return SimulatedEmailSender(settings.sim_outbox)


def build_rate_limits(settings: Settings) -> ChannelRateLimits:
    """One limit per channel, shared by every worker through Redis when ``redis_url`` is set."""
    rates = {"sms": settings.sms_per_second, "email": settings.email_per_second}
    limiters = {}
    for channel, rate in rates.items():
        if rate <= 0:
            continue
        key = f"omvant:{settings.queue_prefix}notify:{channel}"
        per_second = max(1, int(rate))
        limiters[channel] = (
            redis_limiter(settings.redis_url, key, per_second=per_second, max_wait=MAX_WAIT)
            if settings.redis_url
            else in_process_limiter(key, per_second=per_second, max_wait=MAX_WAIT)
        )
    return ChannelRateLimits(limiters)
