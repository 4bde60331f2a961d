"""Which SMS gateway, e-mail sender and rate limiter a process uses, from its settings."""

from __future__ import annotations

from workers.adapters.notifiers import (
    EmailSender,
    SimulatedEmailSender,
    SimulatedSmsGateway,
    SmsGateway,
)
from workers.adapters.rate_limits import InProcessRateLimiter, RateLimiter, RedisRateLimiter
from workers.settings import Settings


def build_sms_gateway(settings: Settings) -> SmsGateway:
    """The HTTP gateway when ``sms_gateway_url`` is set, else the simulated one."""
    if settings.sms_gateway_url:
        from workers.adapters.http_sms_gateway import HttpSmsGateway

        return HttpSmsGateway(settings.sms_gateway_url, timeout=settings.notifier_timeout_seconds)
    return SimulatedSmsGateway(settings.sim_outbox)


def build_email_sender(settings: Settings) -> EmailSender:
    """SMTP when ``smtp_url`` is set, else the simulated sender."""
    if settings.smtp_url:
        from workers.adapters.smtp_email import SmtpConfig, SmtpEmailSender

        return SmtpEmailSender(
            SmtpConfig.from_url(settings.smtp_url),
            sender=settings.smtp_from,
            timeout=settings.notifier_timeout_seconds,
        )
    return SimulatedEmailSender(settings.sim_outbox)


def build_rate_limiter(settings: Settings) -> RateLimiter:
    """Shared buckets in Redis when ``rate_limit_redis_url`` is set, else per process."""
    rates = {"sms": settings.sms_per_second, "email": settings.email_per_second}
    if settings.rate_limit_redis_url:
        import redis

        client = redis.Redis.from_url(settings.rate_limit_redis_url)
        return RedisRateLimiter(client, rates, prefix=settings.queue_prefix)
    return InProcessRateLimiter(rates)
