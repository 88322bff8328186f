from __future__ import annotations

from dependency_injector import containers, providers

from common.db import Database
from common.mail import OutgoingMail, SmtpMailer
from common.outbox import OutboxRelay
from enrolments.adapters.fakturownia import FakturowniaClient
from enrolments.adapters.invoice_outbox import InvoiceOutbox
from enrolments.adapters.learners import LearnerRepository
from enrolments.adapters.mail_outbox import SqlMailOutbox
from enrolments.adapters.repository import EnrolmentRepository
from enrolments.adapters.upstreams import CoursesClient, UsersClient
from enrolments.domain import EXPIRY_JOB, MAIL_PURGE_JOB
from enrolments.learners import LearnerService
from enrolments.service import EnrolmentService, InvoiceProcessor, RetryPolicy
from enrolments.settings import EnrolmentsSettings
from enrolments.workers import BackgroundWorkers, DailyJob, InvoiceWorkerPool


def _secret(settings: EnrolmentsSettings, name: str) -> str:
    return str(getattr(settings, name).get_secret_value())


def _mail_relay(
    outbox: SqlMailOutbox, mailer: SmtpMailer, settings: EnrolmentsSettings
) -> OutboxRelay[OutgoingMail]:
    return OutboxRelay(
        "mail",
        outbox,
        mailer.send,
        poll_interval=settings.worker_poll_interval,
        backoff_base=settings.mail_backoff_base,
    )


def _daily_jobs(
    service: EnrolmentService, mail_outbox: SqlMailOutbox, settings: EnrolmentsSettings
) -> list[DailyJob]:
    return [
        DailyJob(EXPIRY_JOB, service.expire_daily, interval=settings.expiry_check_interval),
        DailyJob(MAIL_PURGE_JOB, mail_outbox.purge, interval=settings.mail_purge_interval),
    ]


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=EnrolmentsSettings)
    database = providers.Singleton(
        Database, url=settings.provided.database_url, pool_size=settings.provided.db_pool_size
    )
    repository = providers.Singleton(EnrolmentRepository, database=database)
    learner_repository = providers.Singleton(LearnerRepository, database=database)
    learner_service = providers.Singleton(LearnerService, repository=learner_repository)
    users = providers.Singleton(
        UsersClient,
        settings.provided.users_url,
        internal_key=providers.Callable(_secret, settings, "internal_api_key"),
        timeout=settings.provided.upstream_timeout,
    )
    courses = providers.Singleton(
        CoursesClient,
        settings.provided.courses_url,
        internal_key=providers.Callable(_secret, settings, "internal_api_key"),
        timeout=settings.provided.upstream_timeout,
    )
    fakturownia = providers.Singleton(
        FakturowniaClient,
        settings.provided.fakturownia_base_url,
        providers.Callable(_secret, settings, "fakturownia_api_token"),
        seller_name=settings.provided.fakturownia_seller_name,
        timeout=settings.provided.fakturownia_timeout,
        tax=settings.provided.fakturownia_tax,
        max_connections=settings.provided.invoice_workers,
    )
    invoice_outbox = providers.Singleton(
        InvoiceOutbox, database=database, lease_seconds=settings.provided.invoice_lease_seconds
    )
    mail_outbox = providers.Singleton(
        SqlMailOutbox, database=database, retention_days=settings.provided.mail_retention_days
    )
    mailer = providers.Singleton(SmtpMailer, settings.provided.mail)
    retry_policy = providers.Singleton(
        RetryPolicy,
        backoff_base=settings.provided.invoice_backoff_base,
        backoff_cap=settings.provided.invoice_backoff_cap,
        max_attempts=settings.provided.invoice_max_attempts,
    )
    invoice_processor = providers.Singleton(
        InvoiceProcessor, outbox=invoice_outbox, fakturownia=fakturownia, policy=retry_policy
    )
    invoice_pool = providers.Singleton(
        InvoiceWorkerPool,
        outbox=invoice_outbox,
        processor=invoice_processor,
        workers=settings.provided.invoice_workers,
        poll_interval=settings.provided.worker_poll_interval,
    )
    mail_relay = providers.Singleton(_mail_relay, mail_outbox, mailer, settings)
    service = providers.Singleton(
        EnrolmentService, repository=repository, users=users, courses=courses
    )
    daily_jobs = providers.Singleton(_daily_jobs, service, mail_outbox, settings)
    workers = providers.Singleton(
        BackgroundWorkers, invoices=invoice_pool, mail=mail_relay, daily=daily_jobs
    )
