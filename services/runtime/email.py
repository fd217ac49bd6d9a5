"""The notifier and its mailer, built from the settings object's SMTP and e-mail settings."""

from __future__ import annotations

import logging
from datetime import timedelta

from events.store import EventStore
from projections.reads import EntityReader
from services.adapters.smtp import SmtpMailer
from services.commands.notifications import Notifier
from services.domain.mail import Mailer, NullMailer
from services.runtime.settings import Settings

log = logging.getLogger("dart.notifier")


def mailer_from_settings(settings: Settings) -> Mailer:
    """SMTP when DART_SMTP_HOST is set; otherwise a mailer that only logs what it would send."""
    if not settings.smtp_host:
        return NullMailer()
    return SmtpMailer(settings.smtp_host, settings.smtp_port, settings.smtp_from, settings.smtp_username or None,
                      settings.smtp_password or None, settings.smtp_starttls, settings.smtp_timeout)


def notifier_from_settings(store: EventStore, settings: Settings) -> Notifier:
    mailer = mailer_from_settings(settings)
    log.info("notifier: %r, env %s, cc on error %s", mailer, settings.env_name,
             ",".join(settings.email_cc_on_error) or "-")
    # A claim's lease outlives a slow SMTP exchange, so no other process takes over a live send and mails twice.
    return Notifier(EntityReader(store), mailer, settings.env_name, settings.email_cc_on_error,
                    base_url=settings.email_base_url, max_age=timedelta(seconds=settings.email_max_age_seconds),
                    lease=timedelta(seconds=max(60.0, 3 * settings.smtp_timeout)))
