from __future__ import annotations

from pydantic import Field, SecretStr

from common.mail import MailSettings
from common.settings import BaseServiceSettings


class EnrolmentsSettings(BaseServiceSettings):
    third_party_secrets = frozenset({"fakturownia_api_token"})

    database_url: str = "sqlite:///var/enrolments.db"
    db_pool_size: int = 10
    users_url: str = "http://127.0.0.1:8001"
    courses_url: str = "http://127.0.0.1:8002"
    upstream_timeout: float = 5.0

    # Fakturownia: https://{domain}.fakturownia.pl unless FAKTUROWNIA_URL says otherwise.
    fakturownia_domain: str = "course-platform"
    fakturownia_url: str = ""
    fakturownia_api_token: SecretStr = SecretStr("")
    fakturownia_seller_name: str = "Course Platform sp. z o.o."
    fakturownia_timeout: float = 10.0
    fakturownia_tax: int = 23

    # Background work: the invoice worker pool, the mail relay, the daily expiry.
    run_workers: bool = True
    invoice_workers: int = Field(4, ge=1, le=64)
    invoice_lease_seconds: float = 120.0
    invoice_backoff_base: float = 2.0
    invoice_backoff_cap: float = 600.0
    invoice_max_attempts: int = 40
    worker_poll_interval: float = 1.0
    mail_backoff_base: float = 2.0
    expiry_check_interval: float = 60.0
    # Sent and failed mail is deleted this many days after it finished (as in users).
    mail_retention_days: float = Field(30.0, ge=0)
    # Seconds between two runs of that purge (each deletes at most 10,000 rows).
    mail_purge_interval: float = Field(3600.0, gt=0)

    mail: MailSettings = Field(default_factory=MailSettings)

    @property
    def fakturownia_base_url(self) -> str:
        return self.fakturownia_url or f"https://{self.fakturownia_domain}.fakturownia.pl"
