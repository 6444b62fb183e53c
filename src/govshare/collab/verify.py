"""核验 for service tasks: the platform's own verification of a key against a shared
store, under the grant of the case's accepting department, answered yes/no only —
the officer never sees the stored values (数据不落地)."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from govshare.rules.clock import china_today
from govshare.sharing import store as shared
from govshare.sharing.data import Caller, authorize
from govshare.sharing.errors import NoGrant, StoreNotFound
from govshare.sharing.models import SharingMode

YES, NO, UNAVAILABLE = "yes", "no", "unavailable"


class StoreVerifier:
    """Verifies against the hub's shared stores (``DataServices.db``)."""

    def __init__(self, db: shared.SharedDatabase, today: date | None = None) -> None:
        self.db = db
        self.today = today

    def __call__(
        self, session: Session, *, department_id: int, resource_code: str, key: str
    ) -> str:
        try:
            auth = authorize(
                session,
                Caller.platform("collab", department_id),
                resource_code,
                [SharingMode.VERIFICATION],
                self.today or china_today(),
            )
        except (NoGrant, StoreNotFound):
            return UNAVAILABLE
        found = shared.lookup(self.db, auth.store, [key], [], auth.grant.row_filter)
        return YES if next(iter(found), None) is not None else NO
