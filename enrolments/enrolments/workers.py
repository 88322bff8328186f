"""Background work of the enrolments service.

* :class:`InvoiceWorkerPool` — a ``ThreadPoolExecutor`` whose threads each loop:
  claim one due invoice job (``SKIP LOCKED`` + lease), process it, repeat.
* the mail relay — ``common.outbox.OutboxRelay`` over the SQL mail outbox.
* :class:`DailyJob` — the periodic jobs: the daily expiry, run at most once per day
  across every process (the ``job_runs`` row decides who runs), and the purge of sent
  and failed mail older than ``MAIL_RETENTION_DAYS`` (bounded batches, every
  ``MAIL_PURGE_INTERVAL`` seconds).

They run inside the web process when ``RUN_WORKERS`` is true, or alone with
``flask --app enrolments invoice-worker``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from common.mail import OutgoingMail
from common.outbox import OutboxRelay
from common.request_context import set_request_id
from enrolments.adapters.invoice_outbox import InvoiceOutbox
from enrolments.service import InvoiceProcessor

log = logging.getLogger(__name__)


class InvoiceWorkerPool:
    def __init__(
        self,
        outbox: InvoiceOutbox,
        processor: InvoiceProcessor,
        *,
        workers: int = 4,
        poll_interval: float = 1.0,
    ) -> None:
        self.outbox = outbox
        self.processor = processor
        self.workers = workers
        self.poll_interval = poll_interval
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._executor: ThreadPoolExecutor | None = None
        self._futures: list[Future[None]] = []

    def start(self) -> InvoiceWorkerPool:
        self._stop.clear()
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="invoice-worker")
        self._futures = [self._executor.submit(self._loop, n) for n in range(self.workers)]
        return self

    def wake(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def stop(self, timeout: float = 30) -> None:
        """Finish the jobs in hand, claim no more. Unfinished leases expire and
        another process takes them over."""
        self._stop.set()
        self.wake()
        if self._executor is not None:
            for future in self._futures:
                try:
                    future.result(timeout)
                except Exception:  # noqa: BLE001 - stopping anyway
                    log.exception("invoice_worker_stop_failed")
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _loop(self, number: int) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception:  # noqa: BLE001 - the worker must outlive a bad poll
                log.exception("invoice_worker_poll_failed", extra={"worker": number})
                worked = False
            if not worked:
                with self._wake:
                    if not self._stop.is_set():
                        self._wake.wait(self.poll_interval)

    def run_once(self) -> bool:
        jobs = self.outbox.claim(1)
        for job in jobs:
            set_request_id(f"invoice-{job.enrolment_id}-{job.attempts}")
            self.processor.process(job)
        return bool(jobs)


class DailyJob:
    """Calls ``run`` every ``interval`` seconds. The daily expiry's ``run`` checks
    whether today's run happened and returns None when another process already did it;
    the mail purge's deletes whatever is due."""

    def __init__(self, name: str, run: Callable[[], Any], *, interval: float = 60.0) -> None:
        self.name = name
        self.run = run
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> DailyJob:
        self._thread = threading.Thread(target=self._loop, name=f"daily-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                set_request_id(f"daily-{self.name}")
                self.run()
            except Exception:  # noqa: BLE001 - try again at the next check
                log.exception("daily_job_failed", extra={"job": self.name})
            self._stop.wait(self.interval)


class BackgroundWorkers:
    """Everything that runs off the request path, started and stopped together."""

    def __init__(
        self,
        invoices: InvoiceWorkerPool,
        mail: OutboxRelay[OutgoingMail],
        daily: list[DailyJob],
    ) -> None:
        self.invoices = invoices
        self.mail = mail
        self.daily = daily
        self.running = False

    def start(self) -> BackgroundWorkers:
        if not self.running:
            self.invoices.start()
            self.mail.start()
            for job in self.daily:
                job.start()
            self.running = True
        return self

    def wake(self) -> None:
        if self.running:
            self.invoices.wake()
            self.mail.wake()

    def stop(self) -> None:
        if self.running:
            for job in self.daily:
                job.stop()
            self.invoices.stop()
            self.mail.stop()
            self.running = False
