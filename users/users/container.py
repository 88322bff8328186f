from __future__ import annotations

import threading

from dependency_injector import containers, providers

from common.mail import MailSettings, SmtpMailer
from common.outbox import OutboxRelay
from users.adapters.mongo import make_database, make_mongo_client
from users.adapters.outbox import MongoOutbox
from users.adapters.repository import UserRepository
from users.security import Passwords, Secrets
from users.service import OutboxDelivery, Policy, UserService
from users.settings import UsersSettings


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=UsersSettings)
    mail_settings = providers.Dependency(instance_of=MailSettings)
    mongo_client = providers.Singleton(make_mongo_client, url=settings.provided.mongo_url)
    database = providers.Singleton(make_database, mongo_client, settings.provided.mongo_db)
    user_repository = providers.Singleton(UserRepository, database=database)
    secrets = providers.Singleton(
        Secrets, master_key=settings.provided.totp_encryption_key.get_secret_value.call()
    )
    outbox = providers.Singleton(
        MongoOutbox,
        database=database,
        sealer=secrets,
        lease_seconds=settings.provided.mail_relay_lease_seconds,
        retention_days=settings.provided.mail_retention_days,
    )
    mailer = providers.Singleton(SmtpMailer, settings=mail_settings)
    # Rung by a request that stored outbox work, so the relay starts at once.
    mail_doorbell = providers.Singleton(threading.Event)
    passwords = providers.Singleton(Passwords)
    policy = providers.Singleton(
        Policy,
        activation_code_minutes=settings.provided.activation_code_minutes,
        activation_max_attempts=settings.provided.activation_max_attempts,
        activation_resend_seconds=settings.provided.activation_resend_seconds,
        activation_code_only_max_attempts=settings.provided.activation_code_only_max_attempts,
        activation_code_only_window_seconds=settings.provided.activation_code_only_window_seconds,
        reset_token_minutes=settings.provided.reset_token_minutes,
        reset_resend_seconds=settings.provided.reset_resend_seconds,
        frontend_url=settings.provided.frontend_url,
        totp_issuer=settings.provided.totp_issuer,
    )
    user_service = providers.Singleton(
        UserService,
        repository=user_repository,
        outbox=outbox,
        passwords=passwords,
        secrets=secrets,
        policy=policy,
        notify_mail=mail_doorbell.provided.set,
    )
    outbox_delivery = providers.Singleton(
        OutboxDelivery, send_mail=mailer.provided.send, service=user_service
    )
    mail_relay = providers.Singleton(
        OutboxRelay,
        "users-mail",
        outbox,
        outbox_delivery,
        poll_interval=settings.provided.mail_relay_poll_seconds,
        max_attempts=settings.provided.mail_relay_max_attempts,
        backoff_base=settings.provided.mail_relay_backoff_base,
        wake_event=mail_doorbell,
    )
