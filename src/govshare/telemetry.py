"""Counters and histograms that the hub's processes keep as they serve (Prometheus).

Plumbing below every domain, so any domain may count what it does; ``govshare.ops``
exposes them on ``/metrics`` with the gauges it reads from the database at scrape time.
With ``govshare serve --workers N`` each worker writes its values to files under
``PROMETHEUS_MULTIPROC_DIR`` (set by ``serve`` before the workers start) and a scrape
adds them up; labels stay few and bounded (route templates, task ids, client keys).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

HTTP_SECONDS = Histogram(
    "govshare_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status code.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PACKAGES_ACCEPTED = Counter(
    "govshare_exchange_packages_accepted",
    "Exchange packages a provider task's node delivered and the hub accepted.",
    ["task"],
)
ROWS_ACCEPTED = Counter(
    "govshare_exchange_rows_accepted",
    "Rows carried by the accepted packages of a provider task.",
    ["task"],
)
PACKAGES_REFUSED = Counter(
    "govshare_exchange_packages_refused",
    "Packages the hub refused (format, signature, sequence), by task ('' when unknown).",
    ["task"],
)
DATA_CALLS = Counter(
    "govshare_data_service_calls",
    "Data-service calls (lookup, query, verify) by API client app key and outcome: "
    "ok, or the refusal's error code.",
    ["client", "outcome"],
)

JOURNAL_BATCH = Histogram(
    "govshare_data_journal_batch_calls",
    "Data-service calls written per journal batch (one transaction: nonces, counts, audit).",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)


def package_accepted(task_id: int, rows: int) -> None:
    PACKAGES_ACCEPTED.labels(task=str(task_id)).inc()
    ROWS_ACCEPTED.labels(task=str(task_id)).inc(rows)


def package_refused(task_id: int | None) -> None:
    PACKAGES_REFUSED.labels(task="" if task_id is None else str(task_id)).inc()


def data_call(client: str, outcome: str) -> None:
    DATA_CALLS.labels(client=client, outcome=outcome).inc()
