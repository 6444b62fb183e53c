"""Sharing console pages (共享), one module a topic, all served by ``router``:

- ``applications``: applying for a catalog entry (with a structured row filter), the
  consumer's and the provider's application lists with their working-day countdowns,
  the application page with its answer, dispute and decision forms, the platform's
  dispute list;
- ``grants``: grants on both sides with revocation and, for 订阅 grants, the receiving
  task;
- ``usage``: usage feedback, usage and data-service call statistics;
- ``objections``: objections (异议) to shared records with their answers;
- ``stores``: shared stores (共享信息库) and their set-up;
- ``calendar``: the years' holiday schedules (节假日安排) the platform admin enters;
- ``common``: what they share (today, notices, countdowns, pages of rows).

Each handler parses the request, calls the sharing service and renders. Reading needs
``sharing.read``; applying, disputing, objecting, subscribing and reporting use need
``sharing.apply``; answering applications and objections and revoking need
``sharing.review``; deciding a dispute needs ``sharing.arbitrate``; setting a store up
needs ``sharing.store``; entering holiday schedules needs ``calendar.admin``. Forms
the service rejects come back with every problem beside its field, rolled back so
nothing of them is stored.
"""

from __future__ import annotations

from govshare.sharing.pages import applications, calendar, grants, objections, stores, usage
from govshare.sharing.pages.applications import timeline
from govshare.sharing.pages.common import (
    Countdown,
    Paged,
    Today,
    countdown,
    grant_state,
    sharing_today,
)
from govshare.sharing.pages.grants import Subscribing
from govshare.sharing.pages.objections import objection_countdown, objection_timeline, shown_key
from govshare.sharing.pages.usage import call_statistics, usage_statistics

__all__ = [
    "Countdown",
    "Paged",
    "Subscribing",
    "Today",
    "call_statistics",
    "countdown",
    "grant_state",
    "objection_countdown",
    "objection_timeline",
    "routers",
    "sharing_today",
    "shown_key",
    "timeline",
    "usage_statistics",
]

routers = (
    applications.router,
    grants.router,
    usage.router,
    objections.router,
    stores.router,
    calendar.router,
)
