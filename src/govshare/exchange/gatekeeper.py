"""Gatekeeper (网闸) mode at the hub: packages and acknowledgements cross as files.

Files are verified exactly like packages that arrive over HTTP; a file is removed from
the folder only after its content is safely in the hub database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from govshare.config import Settings
from govshare.db import session_scope
from govshare.errors import GovshareError
from govshare.exchange import service
from govshare.exchange.models import ExchangePackage, ExchangeTask, TaskKind, TaskState
from govshare.exchange.package import PackageError, parse
from govshare.exchange.store import hub_store


@dataclass
class ImportResult:
    accepted: int = 0
    acks: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)


def import_directory(
    settings: Settings, factory: sessionmaker[Session], directory: Path
) -> ImportResult:
    store = hub_store(settings)
    result = ImportResult()
    for path in sorted(directory.glob("node*-task*.gspkg")):
        blob = path.read_bytes()
        try:
            node_id = int(parse(blob).header["node"])
        except PackageError as exc:
            result.rejected.append((path.name, str(exc)))
            continue
        try:
            with session_scope(factory) as session:
                node = service.get_node(session, node_id)
                service.receive_package(session, settings, store, node, blob)
        except GovshareError as exc:
            result.rejected.append((path.name, exc.message))
            with session_scope(factory) as session:
                service.reject_package(
                    session, settings, service.get_node(session, node_id), exc.message, blob
                )
            continue
        path.unlink()
        result.accepted += 1
    for path in sorted(directory.glob("acks-node*.json")):
        node_id = int(path.name.split("-")[1].removeprefix("node"))
        with session_scope(factory) as session:
            node = service.get_node(session, node_id)
            for ack in json.loads(path.read_text(encoding="utf-8")):
                counts = {k: int(ack.get(k, 0)) for k in ("inserted", "updated", "deleted")}
                service.acknowledge(session, node, int(ack["task_id"]), int(ack["seq"]), counts)
                result.acks += 1
        path.unlink()
    store.close()
    return result


def export_directory(
    settings: Settings, factory: sessionmaker[Session], directory: Path, node_id: int
) -> int:
    """The node's task list and every package its running subscriptions still lack."""
    store = hub_store(settings)
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    with session_scope(factory) as session:
        node = service.get_node(session, node_id)
        tasks = service.list_tasks(session, node_id=node.id)
        specs = [service.task_assignment(session, t) for t in tasks]
        (directory / f"tasks-node{node.id}.json").write_text(
            json.dumps(specs, default=str), encoding="utf-8"
        )
        key = service.node_cipher_key(settings, node)
        for task in tasks:
            if task.kind is not TaskKind.SUBSCRIBER or task.state is not TaskState.RUNNING:
                continue
            source = session.get(ExchangeTask, task.source_task_id)
            assert source is not None
            after = service.serve_after(session, task, task.acked_seq)
            rows = session.scalars(
                select(ExchangePackage)
                .where(ExchangePackage.task_id == source.id, ExchangePackage.seq > after)
                .order_by(ExchangePackage.seq)
            )
            for row in rows:
                stored = parse(store.get(session, row))
                # Files may be read by a node of any version: no wrapped data keys.
                blob = stored.for_hop(node.cipher, key, wrap=False)
                name = f"to-node{node.id}-task{task.id}-{row.seq:012d}"
                (directory / f"{name}.json").write_text(
                    json.dumps(
                        {
                            "task_id": task.id,
                            "seq": row.seq,
                            "provider_key": service.package_key(source.node, stored),
                        }
                    ),
                    encoding="utf-8",
                )
                (directory / f"{name}.gspkg").write_bytes(blob)
                count += 1
    store.close()
    return count
