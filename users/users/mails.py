"""The mails the users service sends. HTML bodies escape every user-provided value."""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from common.mail import OutgoingMail


def activation_mail(*, to: str, first_name: str, code: str, minutes: int) -> OutgoingMail:
    text = (
        f"Hello {first_name},\n\n"
        f"your Course Platform activation code is {code}.\n"
        f"It expires in {minutes} minutes and can be used once.\n"
    )
    html = (
        f"<p>Hello {escape(first_name)},</p>"
        f"<p>your Course Platform activation code is <strong>{code}</strong>.</p>"
        f"<p>It expires in {minutes} minutes and can be used once.</p>"
    )
    return OutgoingMail(to=to, subject="Your activation code", text=text, html=html)


def reset_link(frontend_url: str, token: str) -> str:
    return f"{frontend_url.rstrip('/')}/reset-password?token={quote(token, safe='')}"


def reset_mail(*, to: str, first_name: str, link: str, minutes: int) -> OutgoingMail:
    text = (
        f"Hello {first_name},\n\n"
        f"to choose a new password, open this link within {minutes} minutes:\n{link}\n\n"
        "If you did not ask for this, ignore this mail; your password stays the same.\n"
    )
    html = (
        f"<p>Hello {escape(first_name)},</p>"
        f'<p>to choose a new password, open <a href="{escape(link)}">this link</a> '
        f"within {minutes} minutes.</p>"
        "<p>If you did not ask for this, ignore this mail; your password stays the same.</p>"
    )
    return OutgoingMail(to=to, subject="Reset your password", text=text, html=html)
