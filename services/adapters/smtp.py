"""SMTP delivery of a ``Mail`` (services/domain/mail.py) with smtplib."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from email.utils import formatdate

from services.domain.mail import Mail

log = logging.getLogger("dart.mailer")


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
