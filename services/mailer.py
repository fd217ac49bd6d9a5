"""Sending mail: a ``Mail`` value, the ``Mailer`` protocol, SMTP delivery with smtplib, and a null mailer that
only logs (used when no SMTP host is configured)."""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
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


class SmtpMailer:
    """Delivery over SMTP: one connection a mail (mails are rare), STARTTLS and login when configured."""

    def __init__(self, host: str, port: int, sender: str, username: str | None = None,
                 password: str | None = None, starttls: bool = False, timeout: float = 10) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout

    def message(self, mail: Mail) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(mail.to)
        if mail.cc:
            message["Cc"] = ", ".join(mail.cc)
        message["Subject"] = mail.subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        if mail.message_id:
            message["Message-ID"] = mail.message_id
        message.set_content(mail.body)
        return message

    def send(self, mail: Mail) -> None:
        if not mail.recipients:
            return
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            refused = smtp.send_message(self.message(mail), from_addr=self.sender, to_addrs=mail.recipients)
        if refused:
            # Some recipients were accepted: sending again would repeat the mail to them, so only log.
            log.warning("mail %r: the server refused %s", mail.subject, ", ".join(sorted(refused)))

    def __repr__(self) -> str:
        return f"SmtpMailer({self.host}:{self.port}, from={self.sender}, starttls={self.starttls})"


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
