"""Mail drafts leave the domain as a ``Mail`` value handed to a ``Mailer``; the SMTP delivery lives in
services/adapters/smtp.py. ``NullMailer`` only logs, for a system with no SMTP host configured."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("dart.mailer")


@dataclass(frozen=True)
class Mail:
    to: tuple[str, ...]
    subject: str
    body: str
    cc: tuple[str, ...] = ()
    message_id: str | None = None  # stable per event, so receivers can spot a duplicate too

    @property
    def recipients(self) -> list[str]:
        """Every envelope recipient (To then Cc), each once."""
        return list(dict.fromkeys([*self.to, *self.cc]))


class Mailer(Protocol):
    def send(self, mail: Mail) -> None:
        """Deliver the mail or raise; returning means the server accepted it."""



class NullMailer:
    """No SMTP host configured: the mail is logged, not sent."""

    def __init__(self) -> None:
        self.sent: list[Mail] = []

    def send(self, mail: Mail) -> None:
        self.sent.append(mail)
        del self.sent[:-100]  # keep the last few for inspection, never grow without bound
        log.info("mail not sent (no SMTP host configured): to=%s cc=%s subject=%r",
                 ",".join(mail.to), ",".join(mail.cc), mail.subject)

    def __repr__(self) -> str:
        return "NullMailer()"
