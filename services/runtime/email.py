"""The notifier's settings (SMTP and e-mail) and the notifier built from them."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from events.store import EventStore
from projections.reads import EntityReader
from services.adapters.smtp import SmtpMailer
from services.commands.notifications import Notifier, address_list
from services.domain.mail import Mailer, NullMailer

log = logging.getLogger("dart.notifier")


@dataclass(frozen=True)
class EmailSettings:
    smtp_host: str | None = None
    smtp_port: int = 25
    sender: str = "dart@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 10.0
    env_name: str = "local"
    cc_on_error: tuple[str, ...] = ()
    base_url: str = ""  # prefixed to the API paths in bodies, e.g. https://dart.example.com
    max_age_seconds: float = 86400.0  # events older than this get no mail (0: no limit)


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")




def email_settings_from_env(env: Mapping[str, str] | None = None) -> EmailSettings:
    """DART_SMTP_HOST, DART_SMTP_PORT (25), DART_SMTP_FROM (dart@localhost), DART_SMTP_USERNAME,
    DART_SMTP_PASSWORD, DART_SMTP_STARTTLS, DART_SMTP_TIMEOUT (10 s), DART_ENV_NAME (local),
    DART_EMAIL_CC_ON_ERROR (comma-separated), DART_EMAIL_BASE_URL, DART_EMAIL_MAX_AGE_SECONDS (86400)."""
    env = os.environ if env is None else env
    try:
        return EmailSettings(
            smtp_host=env.get("DART_SMTP_HOST") or None,
            smtp_port=int(env.get("DART_SMTP_PORT") or 25),
            sender=env.get("DART_SMTP_FROM") or "dart@localhost",
            username=env.get("DART_SMTP_USERNAME") or None,
            password=env.get("DART_SMTP_PASSWORD") or None,
            starttls=_flag(env.get("DART_SMTP_STARTTLS")),
            timeout=float(env.get("DART_SMTP_TIMEOUT") or 10),
            env_name=env.get("DART_ENV_NAME") or "local",
            cc_on_error=address_list(env.get("DART_EMAIL_CC_ON_ERROR")),
            base_url=(env.get("DART_EMAIL_BASE_URL") or "").rstrip("/"),
            max_age_seconds=float(env.get("DART_EMAIL_MAX_AGE_SECONDS") or 86400),
        )
    except ValueError as exc:
        raise ValueError(f"email settings: {exc}") from exc


def mailer_from_settings(settings: EmailSettings) -> Mailer:
    if not settings.smtp_host:
        return NullMailer()
    return SmtpMailer(settings.smtp_host, settings.smtp_port, settings.sender, settings.username,
                      settings.password, settings.starttls, settings.timeout)


def notifier_from_env(store: EventStore, env: Mapping[str, str] | None = None) -> Notifier:
    settings = email_settings_from_env(env)
    mailer = mailer_from_settings(settings)
    log.info("notifier: %r, env %s, cc on error %s", mailer, settings.env_name,
             ",".join(settings.cc_on_error) or "-")
    return Notifier(EntityReader(store), mailer, settings.env_name, settings.cc_on_error,
                    base_url=settings.base_url, max_age=timedelta(seconds=settings.max_age_seconds),
                    lease=timedelta(seconds=max(60.0, 3 * settings.timeout)))


