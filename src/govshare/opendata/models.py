"""Tables of the open-data portal."""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from govshare.db import Base


class OpenDownload(Base):
    """下载次数: how often an open dataset was downloaded in one format on one day (China
    time). A counter, not a log: no caller is recorded. ``resource_id`` carries no foreign
    key so that counts outlive an entry's withdrawal or removal (usage statistics)."""

    __tablename__ = "open_download"

    resource_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    format: Mapped[str] = mapped_column(String(8), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
