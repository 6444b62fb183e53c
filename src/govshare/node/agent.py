"""The node's agent: registers, heartbeats, runs its provider and subscriber tasks,
and answers the hub's commands. One thread; every step is safe to repeat after a crash.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from govshare.exchange import package
from govshare.node import files
from govshare.node.capture import ChangeLog, open_change_log, slot_name
from govshare.node.client import HubClient, HubRefused, HubUnavailable
from govshare.node.config import SECRET_ENV, NodeConfig, NodeConfigError, node_secret
from govshare.node.source import (
    KEY_SEPARATOR,
    KeyTally,
    SourceReader,
    describe,
    key_string,
    key_strings,
    make_engine,
    row_hash,
)
from govshare.node.store import LocalStore, StoreSealed
from govshare.node.target import TargetRefused, TargetWriter, target_engine
from govshare.security import crypto
from govshare.security.atrest import AtRestCipher, AtRestKeyError

log = structlog.get_logger()
MAX_BACKOFF = 30.0
LONG_POLL_SECONDS = 5.0
MIN_WAKE_WAIT_SECONDS = 0.2  # shorter idle spells are not worth a request
REPORT_AGAIN_SECONDS = 1.0


@dataclass
class TaskRuntime:
    """What the agent keeps about a task between ticks."""

    spec: dict[str, Any]
    next_run: float = 0.0
    failures: int = 0
    error: str = ""
    reader: SourceReader | None = None
    change_log: ChangeLog | None = None
    writer: TargetWriter | None = None
    built_for: int = -1  # config_version the reader/writer were built for
    hold_at: int | None = None  # subscriber: stop applying here for a checksum
    rows_moved: int = 0
    alerted: str | None = None
    again_now: bool = False  # run the next step at once (it waited at the hub already)
    waiting_for_hub: bool = False  # the last step failed because the hub was unreachable
    # What this process knows of the task's key mirror: every key in it is an integer
    # (as text) no greater than ``mirror_ceiling`` (None: the mirror is empty). Keys above
    # need no lookup. Learnt when the mirror is seen empty, kept while only integer keys
    # are added (deletions only lower the true maximum).
    mirror_bounded: bool = False
    mirror_ceiling: int | None = None

    @property
    def id(self) -> int:
        return int(self.spec["id"])

    @property
    def running(self) -> bool:
        return self.spec.get("state") == "running"


def seconds_to_next_run(schedule: dict[str, Any]) -> float:
    """By cron expression when one is given (node's local time), else by interval."""
    if schedule.get("cron"):
        from croniter import croniter

        return max(0.0, croniter(schedule["cron"], time.time()).get_next(float) - time.time())
    return float(schedule.get("interval_seconds") or 5)


@dataclass
class PendingChecksum:
    """A subscriber checksum waiting until the target has applied ``at_seq`` (kept in the
    local store too, so a restart holds the task there and takes it)."""

    command_id: int
    task_id: int
    at_seq: int


def _read_path(reader: SourceReader) -> dict[str, str]:
    """How the provider reads its source (读取方式), for the task page: natively
    (connectorx) or through the Python driver, and why the native read was given up."""
    native = reader.native
    if native is None:
        return {"read_path": "driver"}
    if native.gave_up is not None:
        return {"read_path": "driver", "read_path_note": native.gave_up[:300]}
    return {"read_path": "native"}


def open_store(config: NodeConfig) -> LocalStore:
    """The node's local store, sealed at rest when the node has a secret; a missing,
    short or wrong secret is a configuration error told before anything runs."""
    secret = node_secret(config)
    cipher = None
    if secret is not None:
        name = f"前置机口令 ({SECRET_ENV} 或 secret_file)"
        cipher = AtRestCipher(config.store, secret, config.at_rest_cipher, secret_name=name)
    else:
        log.warning("node store kept unsealed: no secret_file or GOVSHARE_NODE_SECRET")
    try:
        return LocalStore(config.store, cipher)
    except (AtRestKeyError, StoreSealed) as exc:
        raise NodeConfigError(str(exc)) from None


class NodeAgent:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.store = open_store(config)
        self.client = HubClient(
            config.hub_url, config.node_id, timeout=config.request_timeout_seconds
        )
        self.tasks: dict[int, TaskRuntime] = {}
        self.engines: dict[str, Engine] = {}
        self.pending_checksums = [PendingChecksum(*row) for row in self.store.pending_checksums()]
        self.answered: set[int] = set()  # command ids answered by this process
        self.assigned = False  # the hub's task list has been received at least once
        self.next_heartbeat = 0.0
        # The hub's 任务变更标记 as of the last heartbeat answer ("" until one came, or
        # from a hub too old to give one: then the node only learns at heartbeats).
        self.assignment_mark = ""
        self.signer: package.Signer | None = None
        self.cipher = "none"
        self.cipher_key: str | None = None
        # Whether the hub said it opens bodies under a wrapped data key (数据密钥): then
        # the hub passes them on without a pass over their bytes, and the outbox seals
        # only their heads. Until a heartbeat says so, packages use the hop's key.
        self.hub_opens_data_keys = False
        self.stop_event = threading.Event()
        self.last_error = ""

    # -- identity -------------------------------------------------------------------------

    def ensure_keys(self) -> dict[str, str]:
        """Key pairs for both algorithms, made once; the hub says which one counts."""
        public = {}
        for alg in ("sm2", "ed25519"):
            if self.store.get(f"{alg}.private") is None:
                private, pub = crypto.generate_signing_key(alg)
                self.store.put(f"{alg}.private", private)
                self.store.put(f"{alg}.public", pub)
            public[alg] = self.store.get(f"{alg}.public") or ""
        return public

    def ensure_registered(self) -> None:
        public = self.ensure_keys()
        if self.store.get("sig_alg") is None:
            if not self.config.enrollment_token:
                raise RuntimeError("前置机尚未注册: 请在 node.toml 中填写 enrollment_token")
            try:
                answer = self.client.register(self.config.enrollment_token, public)
            except HubRefused as refused:
                # Killed last time after the hub took the token but before the answer was
                # kept: the token is spent, but the key registered with it still proves
                # who we are.
                recovered = self._recover_registration() if refused.status == 401 else None
                if recovered is None:
                    raise
                answer = recovered
            with self.store.transaction():  # all or nothing: "sig_alg" marks it complete
                self.store.put("digest_alg", answer["digest_alg"])
                self.store.put("cipher", answer["cipher"])
                self.store.put("cipher_key", answer.get("cipher_key") or "")
                self.store.put("sig_alg", answer["sig_alg"])
            log.info("node registered", node_id=self.config.node_id, sig_alg=answer["sig_alg"])
        self._use_stored_key()
        self.cipher = self.store.get("cipher") or "none"
        self.cipher_key = self.store.get("cipher_key") or None
        if self.store.get(f"{self.store.get('sig_alg')}.next_private"):
            # A rotation begun and not finished (killed, or the hub was unreachable):
            # finish it now if the hub can be asked; the current key works meanwhile.
            try:
                self.rotate_key()
            except (HubUnavailable, HubRefused) as exc:
                log.warning("key rotation not finished; retried at the next start", error=str(exc))

    def _use_stored_key(self) -> bool:
        """Sign with the private key kept in the store; True when that changed the key
        (another process — ``govshare node rotate-key`` — rotated it). Packages still
        waiting in the outbox that the new key did not sign are signed again with it."""
        sig_alg = self.store.get("sig_alg") or "sm2"
        private = self.store.get(f"{sig_alg}.private") or ""
        self.client.use_key(sig_alg, private)
        if self.signer is not None and self.signer.private_key == private:
            return False
        changed = self.signer is not None
        self.signer = package.Signer(
            self.config.node_id, sig_alg, private, self.store.get("digest_alg") or "sm3"
        )
        rotated_at = self.store.get(f"{sig_alg}.rotated_at")
        if rotated_at is not None:
            # A process still signing with the old key may have queued packages after
            # the rotation committed (the rotation re-signed those queued before). It
            # looks at the store before each heartbeat, so only a process killed within
            # a tick of the rotation leaves such packages: a start looks at those queued
            # around the rotation, a process that sees the key change at all.
            around = float(rotated_at)
            since, until = (0.0, None) if changed else (around - 3600, around + 3600)
            with self.store.transaction() as conn:
                resigner = self._resigner(self.store.get(f"{sig_alg}.public"))
                self.store.resign_outbox(conn, resigner, since=since, until=until)
        if changed:
            log.info("node signing key changed; signing with the new key")
        return changed

    def _resigner(self, public: str | None) -> Callable[[bytes], bytes | None]:
        signer = self.signer
        assert signer is not None

        def resign(blob: bytes) -> bytes | None:
            if public and package.parse(blob).signed_by(public):
                return None
            return package.resign(blob, signer)

        return resign

    # -- signing-key rotation (前置机签名密钥轮换) ------------------------------------------

    def rotate_key(self) -> str:
        """Replace this node's signing key; returns the new public key.

        1. A new key pair is kept in the store as the *next* key (the current one stays
           in use).
        2. The hub is asked, with a request signed by the current key, to take the new
           public key.
        3. Only once the hub has taken it, one store transaction makes the next key the
           current one, forgets the old private key and signs the packages still waiting
           in the outbox again with the new key.

        Killed between 2 and 3, the node still signs with the old key, which the hub
        accepts for ``GOVSHARE_NODE_KEY_OVERLAP_HOURS``; the next start (or running this
        again) asks the hub again with the same next key: the hub answers that it is
        already current (asked with the old key while it is accepted, else with the next
        key itself) and step 3 is done then. Killed before 2 or refused, nothing changed
        at the hub and the old key stays in use."""
        sig_alg = self.store.get("sig_alg")
        if sig_alg is None:
            raise RuntimeError("前置机尚未注册，不能轮换密钥: 请先运行 govshare node run")
        if self.signer is None:
            self._use_stored_key()
        assert self.signer is not None
        next_private = self.store.get(f"{sig_alg}.next_private")
        next_public = self.store.get(f"{sig_alg}.next_public")
        if next_private is None or next_public is None:
            next_private, next_public = crypto.generate_signing_key(sig_alg)
            with self.store.transaction():
                self.store.put(f"{sig_alg}.next_private", next_private)
                self.store.put(f"{sig_alg}.next_public", next_public)
        try:
            self.client.rotate_key(next_public)
        except HubRefused as refused:
            if refused.code == "node_key_already_current":
                pass  # the hub took it last time; the answer was lost
            elif refused.status == 401 and self._hub_has_key(sig_alg, next_private, next_public):
                pass  # the old key's overlap is over, but the hub has the next key
            else:
                raise
        with self.store.transaction() as conn:
            self.store.put(f"{sig_alg}.private", next_private)
            self.store.put(f"{sig_alg}.public", next_public)
            self.store.drop(f"{sig_alg}.next_private")
            self.store.drop(f"{sig_alg}.next_public")
            self.store.put(f"{sig_alg}.rotated_at", repr(time.time()))
            signer = package.Signer(
                self.config.node_id, sig_alg, next_private, self.signer.digest_alg
            )
            self.store.resign_outbox(conn, lambda blob: package.resign(blob, signer))
        self.client.use_key(sig_alg, next_private)
        self.signer = signer
        log.info("node signing key rotated", node_id=self.config.node_id)
        return next_public

    def _hub_has_key(self, sig_alg: str, private: str, public: str) -> bool:
        """Whether the hub already knows ``public`` as this node's current key: a request
        signed with it to rotate to it is answered "already current"."""
        probe = HubClient(
            self.config.hub_url, self.config.node_id, timeout=self.config.request_timeout_seconds
        )
        probe.use_key(sig_alg, private)
        try:
            probe.rotate_key(public)
        except HubRefused as refused:
            return refused.code == "node_key_already_current"
        finally:
            probe.close()
        return False  # not reached: the hub never rotates a node to the key it has

    def _recover_registration(self) -> dict[str, Any] | None:
        """The hub's registration answer, asked for with each of our keys in turn (the
        hub chose one algorithm; the answer that was lost said which)."""
        for alg in ("sm2", "ed25519"):
            self.client.use_key(alg, self.store.get(f"{alg}.private") or "")
            try:
                return self.client.recover_registration()
            except HubRefused:
                continue
        return None

    def engine(self, name: str, *, target: bool) -> Engine:
        pool = self.config.targets if target else self.config.sources
        if name not in pool:
            raise KeyError(f"{'目标库' if target else '数据源'} {name} 未在 node.toml 中配置")
        key = ("t:" if target else "s:") + name
        if key not in self.engines:
            url = pool[name].url
            self.engines[key] = target_engine(url) if target else make_engine(url)
        return self.engines[key]

    # -- the loop ---------------------------------------------------------------------------

    def run(self, *, until: Callable[[], bool] | None = None) -> None:
        self.ensure_registered()
        while not self.stop_event.is_set() and not (until and until()):
            try:
                self.tick()
                self.wait_for_assignments()
            except Exception:
                log.exception("node tick failed; continuing")
                self.stop_event.wait(min(MAX_BACKOFF, 5))
            self.stop_event.wait(self.config.tick_seconds)

    def tick(self) -> None:
        now = time.monotonic()
        if self.config.transport == "http" and now >= self.next_heartbeat:
            try:
                behind = self.heartbeat()
                # What the hub shows of a changed task (its state in the console) comes
                # from the next report: make it within a second, not a heartbeat later.
                self.next_heartbeat = now + (
                    min(self.config.heartbeat_seconds, REPORT_AGAIN_SECONDS)
                    if behind
                    else self.config.heartbeat_seconds
                )
                self._resume_after_hub_outage()
            except (HubUnavailable, HubRefused) as exc:
                self.last_error = str(exc)
                self.next_heartbeat = now + min(self.config.heartbeat_seconds, 5)
        elif self.config.transport == "folder" and not self.tasks:
            self.load_tasks_file()
        for rt in list(self.tasks.values()):
            if rt.running and rt.spec["kind"] == "provider" and time.monotonic() >= rt.next_run:
                self._guarded(rt, self.run_provider)
        if self.config.transport == "http":
            try:
                self.upload_pending()
            except HubUnavailable as exc:
                self.last_error = str(exc)  # the outbox keeps them; next tick tries again
            self.send_answers()
        for rt in list(self.tasks.values()):
            if rt.running and rt.spec["kind"] == "subscriber" and time.monotonic() >= rt.next_run:
                self._guarded(rt, self.run_subscriber)
        self._finish_checksums()

    def _resume_after_hub_outage(self) -> None:
        """The hub answered: tasks that backed off only because it was unreachable run
        at once, instead of sleeping out a back-off of up to ``MAX_BACKOFF`` seconds
        that grew while the hub restarted."""
        for rt in self.tasks.values():
            if rt.waiting_for_hub:
                rt.waiting_for_hub = False
                rt.next_run = 0.0

    def _guarded(self, rt: TaskRuntime, step: Callable[[TaskRuntime], None]) -> None:
        """Run a task step; on failure back off exponentially and tell the hub once."""
        try:
            step(rt)
        except (
            HubUnavailable,
            HubRefused,
            SQLAlchemyError,
            package.PackageError,
            OSError,
            KeyError,
            ValueError,
        ) as exc:
            rt.failures += 1
            rt.error = str(exc)[:500]
            rt.again_now = False
            rt.waiting_for_hub = isinstance(exc, HubUnavailable)
            rt.next_run = time.monotonic() + min(MAX_BACKOFF, 0.5 * 2 ** min(rt.failures, 6))
            kind = (
                "database_error"
                if isinstance(exc, SQLAlchemyError | KeyError | TargetRefused)
                else ("send_failed" if rt.spec["kind"] == "provider" else "receive_failed")
            )
            log.warning("task step failed", task=rt.id, error=rt.error, failures=rt.failures)
            if rt.alerted != kind and not isinstance(exc, HubUnavailable):
                self._alert(kind, rt.id, rt.error)
                rt.alerted = kind
            return
        if rt.failures and rt.alerted:
            self._alert(rt.alerted, rt.id, "recovered", resolved=True)
        rt.failures, rt.error, rt.alerted, rt.waiting_for_hub = 0, "", None, False
        rt.next_run = time.monotonic() + (
            0.0 if rt.again_now else seconds_to_next_run(rt.spec["config"].get("schedule") or {})
        )
        rt.again_now = False

    def _alert(
        self, kind: str, task_id: int | None, message: str, *, resolved: bool = False
    ) -> None:
        if self.config.transport != "http":
            return
        with contextlib.suppress(HubUnavailable, HubRefused):
            self.client.alert(kind, task_id, message, resolved=resolved)

    # -- heartbeat and commands ------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        pending = self.store.pending_counts()
        tasks = {}
        for rt in self.tasks.values():
            entry: dict[str, Any] = {
                "kind": rt.spec["kind"],
                "state": rt.spec.get("state"),
                "error": rt.error,
                "failures": rt.failures,
                "rows_moved": rt.rows_moved,
            }
            if rt.spec["kind"] == "provider":
                _, last_seq, _ = self.store.state(rt.id)
                entry |= {
                    "last_seq": last_seq,
                    "pending_packages": pending.get(rt.id, (0, 0))[0],
                    "pending_rows": pending.get(rt.id, (0, 0))[1],
                }
                if rt.reader is not None:
                    entry |= _read_path(rt.reader)
            elif rt.writer is not None:
                entry["applied_seq"] = rt.writer.applied_seq()
            tasks[str(rt.id)] = entry
        errors = [{"task_id": rt.id, "error": rt.error} for rt in self.tasks.values() if rt.error]
        cipher = self.store.cipher
        return {
            "version": "1",
            "tasks": tasks,
            "errors": errors,
            "store_sealed": cipher is not None,
            "store_cipher": cipher.alg if cipher is not None else None,
        }

    def heartbeat(self) -> bool:
        """Report and take the hub's tasks and commands. True when the tasks changed
        since the last heartbeat: the report just sent showed them as they were."""
        self._use_stored_key()  # ``govshare node rotate-key`` may have rotated it meanwhile
        answer = self.client.heartbeat(self.report())
        self.hub_opens_data_keys = bool(answer.get("data_keys"))
        self.apply_assignments(answer["tasks"])
        for cmd in answer["commands"]:
            self.execute(cmd)
        mark, self.assignment_mark = self.assignment_mark, str(answer.get("assignment_mark") or "")
        return bool(mark) and mark != self.assignment_mark

    def wait_for_assignments(self) -> None:
        """Spend the time until the node's next duty (its heartbeat, a task's next run)
        waiting at the hub for a change to its tasks or a new command, and heartbeat at
        once when one comes: a task started in the console starts within a second, not
        at the next heartbeat. Nothing else is due meanwhile, so nothing is held up."""
        if not self.assignment_mark or self.stop_event.is_set():
            return
        wait = self._idle_seconds()
        if wait < MIN_WAKE_WAIT_SECONDS:
            return
        try:
            mark = self.client.wake(self.assignment_mark, wait=wait)
        except (HubRefused, HubUnavailable):
            # Unreachable, refusing, or from before the call: the node keeps to its
            # heartbeats (not a failing request every tick) until one brings a mark.
            self.assignment_mark = ""
            return
        self._heard(mark)

    def _heard(self, mark: str) -> None:
        """The hub says the node's tasks are now ``mark``: heartbeat at once if that is
        not what the last heartbeat brought."""
        if self.assignment_mark and mark != self.assignment_mark:
            self.next_heartbeat = 0.0

    def apply_assignments(self, specs: list[dict[str, Any]]) -> None:
        seen = set()
        for spec in specs:
            seen.add(spec["id"])
            rt = self.tasks.get(spec["id"])
            if rt is None:
                holds = [pc.at_seq for pc in self.pending_checksums if pc.task_id == spec["id"]]
                self.tasks[spec["id"]] = TaskRuntime(
                    spec=spec, hold_at=min(holds) if holds else None
                )
            else:
                rt.spec = spec
        for gone in set(self.tasks) - seen:
            withdrawn = self.tasks.pop(gone)
            self._release_capture(withdrawn)
            if withdrawn.reader is not None:
                withdrawn.reader.close()
        self.assigned = True

    def _release_capture(self, rt: TaskRuntime) -> None:
        """A log-mode task withdrawn from this node: its replication slot would keep the
        business database's log forever, so it is dropped (and the task, if assigned
        again, starts with a fresh load)."""
        if rt.spec["kind"] != "provider" or rt.spec["config"].get("mode") != "log":
            return
        try:
            self._change_log(rt).drop()
        except (SQLAlchemyError, KeyError, ValueError) as exc:
            log.warning("replication slot not dropped", task=rt.id, error=str(exc)[:200])
            return
        self.store.reset_task(rt.id)

    def load_tasks_file(self) -> None:
        path = self.config.store / "tasks.json"
        if path.exists():
            self.apply_assignments(json.loads(path.read_text(encoding="utf-8")))

    def execute(self, cmd: dict[str, Any]) -> None:
        """Carry out a command the hub sent. The hub sends it again with every heartbeat
        until it has the answer, so an id already answered (or a checksum already waiting)
        is skipped; one this node was killed in the middle of is simply carried out again."""
        name, task_id = cmd["command"], cmd.get("task_id")
        if (
            cmd["id"] in self.answered
            or self.store.has_answer(cmd["id"])
            or any(pc.command_id == cmd["id"] for pc in self.pending_checksums)
        ):
            return
        try:
            if name == "collect_schema":
                schemas = {n: describe(self.engine(n, target=False)) for n in self.config.sources}
                self.answer(cmd["id"], True, {"schemas": schemas})
            elif name == "resync" and task_id in self.tasks:
                rt = self.tasks[task_id]
                if rt.spec["kind"] == "provider":
                    self.store.reset_task(task_id)
                else:
                    self._writer(rt).reset()
                self.answer(cmd["id"], True, {})
            elif name == "snapshot" and task_id in self.tasks:
                # The hub pruned packages a consumer still needs: send the table again.
                if self.tasks[task_id].spec["kind"] != "provider":
                    raise ValueError("snapshot is a provider task's command")
                self.store.forget_sent(task_id)
                self.answer(cmd["id"], True, {})
            elif name == "keyset" and task_id in self.tasks:
                deleted = self.detect_deletions(self.tasks[task_id])
                self.answer(cmd["id"], True, {"deleted": deleted})
            elif name == "checksum" and task_id in self.tasks:
                self.checksum_command(cmd)
            else:
                self.answer(cmd["id"], False, {"error": f"unknown command or task: {name}"})
        except (SQLAlchemyError, KeyError, ValueError, OSError) as exc:
            self.answer(cmd["id"], False, {"error": str(exc)[:500]})

    def checksum_command(self, cmd: dict[str, Any]) -> None:
        rt = self.tasks[cmd["task_id"]]
        config = rt.spec["config"]
        if config.get("folder"):
            if rt.spec["kind"] == "provider":
                files.run_file_provider(self, rt, budget_seconds=3600)
                self.upload_pending()
                seq = self.store.state(rt.id)[1]
            else:
                seq = files.applied_seq(self, rt.id)
            count, keyhash = files.folder_checksum(
                self.config.folders[config["folder"]],
                config.get("pattern") or "**/*",
                self.store.get("digest_alg") or "sm3",
            )
            self.answer(cmd["id"], True, {"count": count, "keyhash": keyhash, "seq": seq})
            return
        if rt.spec["kind"] == "provider":
            # Catch up first so the checksum describes what has been packaged.
            if self.config.transport == "http":
                self._extract_and_upload(rt, float("inf"))
            else:
                while self.extract_batch(rt):
                    pass
            self._checksum_pause(cmd["id"], rt.id, "source")
            # One scan of the source's keys finds deletions and makes the checksum.
            tally = self._key_tally(rt)
            self.detect_deletions(rt, tally)
            # A hub gone meanwhile takes the packages from the outbox later and the answer
            # from the store: the checksum taken is not thrown away.
            with contextlib.suppress(HubUnavailable):
                self.upload_pending()
            count, keyhash = tally.checksum()
            _, last_seq, _ = self.store.state(rt.id)
            self.answer(cmd["id"], True, {"count": count, "keyhash": keyhash, "seq": last_seq})
        else:
            at_seq = int(cmd["args"].get("at_seq", 0))
            rt.hold_at = at_seq if rt.hold_at is None else min(rt.hold_at, at_seq)
            self.store.add_pending_checksum(cmd["id"], rt.id, at_seq)
            self.pending_checksums.append(PendingChecksum(cmd["id"], rt.id, at_seq))

    def answer(self, command_id: int, ok: bool, result: dict[str, Any]) -> None:
        """Keep the answer in the local store, then try to deliver it (and any older ones)."""
        self.store.keep_answer(command_id, ok, result, time.time())
        self.answered.add(command_id)
        self.send_answers()

    def send_answers(self) -> None:
        """Deliver kept answers; each stays until the hub acknowledges it. Refusing the
        answer itself (a command the hub does not know, a malformed answer) is final;
        refusing the node (its signature, its clock, a rate limit) is not."""
        for command_id, ok, result in self.store.answers():
            try:
                self.client.command_result(command_id, ok, result)
            except HubUnavailable as exc:
                self.last_error = str(exc)
                return
            except HubRefused as exc:
                if exc.status not in (404, 409, 422):
                    self.last_error = str(exc)
                    return
                log.warning("command answer refused", command=command_id, error=str(exc)[:200])
            self.store.answer_delivered(command_id)

    def _finish_checksums(self) -> None:
        for pc in list(self.pending_checksums):
            rt = self.tasks.get(pc.task_id)
            if rt is None:
                if self.assigned:  # the task was withdrawn from this node
                    self.store.drop_pending_checksum(pc.command_id)
                    self.pending_checksums.remove(pc)
                continue
            try:
                writer = self._writer(rt)
                applied = writer.applied_seq()
                if applied < pc.at_seq:
                    continue
                self._checksum_pause(pc.command_id, rt.id, "target")
                count, keyhash = writer.checksum()
            except (SQLAlchemyError, OSError, KeyError, ValueError) as exc:
                # The target is unreachable: the task's own step reports it; try again later.
                log.warning("checksum deferred", task=rt.id, error=str(exc)[:200])
                continue
            with self.store.transaction() as conn:
                self.store.keep_answer(
                    pc.command_id,
                    True,
                    {"count": count, "keyhash": keyhash, "seq": applied},
                    time.time(),
                    conn,
                )
                self.store.drop_pending_checksum(pc.command_id, conn)
            self.answered.add(pc.command_id)
            self.pending_checksums.remove(pc)
            holds = [p.at_seq for p in self.pending_checksums if p.task_id == rt.id]
            rt.hold_at = min(holds) if holds else None
            if self.config.transport == "http":
                self.send_answers()

    def _checksum_pause(self, command_id: int, task_id: int, role: str) -> None:
        log.info("taking checksum", command=command_id, task=task_id, role=role)
        if self.config.checksum_delay_seconds:
            self.stop_event.wait(self.config.checksum_delay_seconds)

    # -- provider: business table → outbox → hub -----------------------------------------------

    def _reader(self, rt: TaskRuntime) -> SourceReader:
        if rt.reader is None or rt.built_for != rt.spec["config_version"]:
            config = rt.spec["config"]
            if rt.reader is not None:
                rt.reader.close()
            rt.reader = SourceReader(
                self.engine(config["source"], target=False),
                config,
                fast_read=self.config.sources[config["source"]].fast_read,
            )
            rt.change_log = None
            rt.built_for = rt.spec["config_version"]
        return rt.reader

    def _change_log(self, rt: TaskRuntime) -> ChangeLog:
        reader = self._reader(rt)
        if rt.change_log is None:
            config = rt.spec["config"]
            rt.change_log = open_change_log(
                reader.engine, config["table"], reader.key, slot_name(self.config.node_id, rt.id)
            )
        return rt.change_log

    def run_provider(self, rt: TaskRuntime, *, budget_seconds: float = 5.0) -> None:
        if rt.spec["config"].get("folder"):
            files.run_file_provider(self, rt, budget_seconds=budget_seconds)
            return
        started = time.monotonic()
        if rt.spec["config"].get("mode") == "log":
            self._confirm_log(rt)
        if self.config.transport == "http":
            caught_up = self._extract_and_upload(rt, started + budget_seconds)
        else:
            caught_up = False
            while not caught_up and time.monotonic() - started < budget_seconds:
                caught_up = not self.extract_batch(rt)
        config = rt.spec["config"]
        if config.get("delete_detection") != "keyset":
            return
        _, _, last_keyset = self.store.state(rt.id)
        if last_keyset == 0:
            # Until the initial load catches up, a comparison would read the whole source
            # to find deletions among the few keys sent so far; once it has, the keys
            # sent are the source's of moments ago, and reading them all again at once
            # would find at most the rows deleted during the load: the first comparison
            # comes one period after it, as every later one does.
            if caught_up:
                self.store.set_keyset_time(rt.id, time.time())
        elif time.time() - last_keyset >= config.get("keyset_every_seconds", 300):
            self.detect_deletions(rt)

    def extract_batch(self, rt: TaskRuntime) -> bool:
        """Package the next batch of changed rows; True if a full batch was found.

        Incremental mode reads past the cursor column; snapshot mode re-reads the whole
        table each run and sends only rows whose hash changed.
        """
        config = rt.spec["config"]
        if config.get("mode") == "log":
            return self._extract_logged(rt)
        reader = self._reader(rt)
        snapshot = config.get("mode") == "snapshot"
        batch_rows = int(config.get("batch_rows", 50_000))
        cursor, last_seq, _ = self.store.state(rt.id)
        # A plain batch (every row goes as it was read) may come as Arrow columns.
        plain = not snapshot and reader.soft_column is None
        found = reader.next_batch(cursor, batch_rows, columnar=plain)
        if found is None:
            if snapshot and cursor is not None:
                with self.store.transaction() as conn:  # the scan is complete: start over next run
                    self.store.set_cursor(conn, rt.id, None, last_seq)
            return False
        rows, next_cursor = found
        keys = reader.batch_keys(rows)
        hashes = [row_hash(row) for row in rows] if snapshot else None
        int_keys = self._integer_keys(rt, reader, rows)
        with self.store.transaction() as conn:
            if int_keys is not None and rt.mirror_bounded:
                ceiling = rt.mirror_ceiling
                maybe = (
                    []
                    if ceiling is None
                    else [k for k, v in zip(keys, int_keys, strict=True) if v <= ceiling]
                )
                known = self.store.existing_keys(conn, rt.id, maybe) if maybe else {}
            else:
                known = self.store.existing_keys(conn, rt.id, keys)
            ops: list[str] = []
            kept: list[tuple[Any, ...]] | pa.Table = []
            kept_keys: list[str] = []
            kept_hashes: list[int] = []
            gone: list[str] = []
            if plain:
                # Plain incremental batch: every row goes, as an insert or an update; only
                # keys not sent before are new to the mirror.
                ops = ["U" if key in known else "I" for key in keys]
                kept = rows
                kept_keys = [k for k in keys if k not in known] if known else keys
            else:
                for i, (row, key) in enumerate(zip(rows, keys, strict=True)):
                    if reader.is_soft_deleted(row):
                        if key in known:
                            ops.append("D")
                            kept.append(row)
                            gone.append(key)
                        continue
                    if hashes is not None and key in known and known[key] == hashes[i]:
                        continue  # unchanged since it was last sent
                    ops.append("U" if key in known else "I")
                    kept.append(row)
                    kept_keys.append(key)
                    if hashes is not None:
                        kept_hashes.append(hashes[i])
            seq = last_seq
            if kept:
                seq = last_seq + 1
                self._enqueue(conn, rt, seq, reader.columns, ops, kept)
                self.store.add_keys(
                    conn, rt.id, kept_keys, kept_hashes if hashes is not None else None
                )
                self.store.remove_keys(conn, rt.id, gone)
            self.store.set_cursor(conn, rt.id, next_cursor, seq)
        if kept_keys and rt.mirror_bounded:
            if int_keys is None:
                rt.mirror_bounded = False
            else:
                top = max(int_keys)
                rt.mirror_ceiling = (
                    top if rt.mirror_ceiling is None else max(rt.mirror_ceiling, top)
                )
        rt.rows_moved += len(kept)
        return len(rows) == batch_rows

    # -- log-based capture -----------------------------------------------------------

    def _extract_logged(self, rt: TaskRuntime) -> bool:
        """Log mode: the first load reads the whole table (after marking the log's
        position), then each step packages the rows the log says changed since the
        cursor. The cursor is ``["load", position, *key after]`` while loading and
        ``["log", position]`` after. True when more is waiting."""
        reader, change_log = self._reader(rt), self._change_log(rt)
        batch_rows = int(rt.spec["config"].get("batch_rows", 50_000))
        cursor, last_seq, _ = self.store.state(rt.id)
        if cursor is None or cursor[0] not in ("load", "log"):
            cursor = ["load", change_log.start()]
            with self.store.transaction() as conn:
                self.store.set_cursor(conn, rt.id, cursor, last_seq)
        if cursor[0] == "load":
            found = next(reader.batches(cursor[2:] or None, batch_rows), None)
            if found is None:
                with self.store.transaction() as conn:
                    self.store.set_cursor(conn, rt.id, ["log", cursor[1]], last_seq)
                return True
            rows, after = found
            self._package_current(rt, reader, rows, [], ["load", cursor[1], *after])
            return True
        batch = change_log.read(cursor[1], batch_rows)
        if batch.position == cursor[1]:
            return False
        latest: dict[tuple[str | None, ...], str] = {}
        for op, key in batch.changes:
            latest.pop(key, None)  # keep commit order of each key's last change
            latest[key] = op
        rows = reader.rows_for_keys(list(latest)) if latest else []
        found_keys = set(key_strings(rows, [reader.columns.index(k) for k in reader.key]))
        gone = [k for k in map(key_string, latest) if k not in found_keys]
        self._package_current(rt, reader, rows, gone, ["log", batch.position])
        if batch.truncated:
            self.detect_deletions(rt)
        return batch.more

    def _package_current(
        self,
        rt: TaskRuntime,
        reader: SourceReader,
        rows: list[tuple[Any, ...]],
        gone: list[str],
        cursor: list[Any],
    ) -> None:
        """Package rows as they are now (inserts or updates, by the key mirror) and the
        keys ``gone`` from the table (deletions of those sent before), with the cursor
        that follows them, in one transaction of the local store."""
        keys = key_strings(rows, [reader.columns.index(k) for k in reader.key])
        with self.store.transaction() as conn:
            _, last_seq, _ = self.store.state(rt.id)
            known = self.store.existing_keys(conn, rt.id, keys + gone)
            deleted = [k for k in gone if k in known]
            seq = last_seq
            if rows:
                seq += 1
                ops = ["U" if k in known else "I" for k in keys]
                self._enqueue(conn, rt, seq, reader.columns, ops, rows)
                self.store.add_keys(conn, rt.id, [k for k in keys if k not in known])
            if deleted:
                seq += 1
                key_rows = [tuple(k.split(KEY_SEPARATOR)) for k in deleted]
                self._enqueue(conn, rt, seq, list(reader.key), ["D"] * len(deleted), key_rows)
                self.store.remove_keys(conn, rt.id, deleted)
            self.store.set_cursor(conn, rt.id, cursor, seq)
        rt.mirror_bounded = False  # keys came without the integer bound being kept
        rt.rows_moved += len(rows) + len(deleted)

    def _confirm_log(self, rt: TaskRuntime) -> None:
        """Let the database release its log up to the cursor once the hub has every
        package made from it (nothing of the task waits in the outbox)."""
        cursor, _, _ = self.store.state(rt.id)
        if not cursor or cursor[0] != "log" or self.store.pending_counts().get(rt.id):
            return
        self._change_log(rt).confirm(cursor[1])

    def _integer_keys(
        self, rt: TaskRuntime, reader: SourceReader, rows: list[tuple[Any, ...]] | pa.Table
    ) -> list[int] | None:
        """The batch's keys as integers when the key is one integer column (else None);
        the first time, also whether the mirror is empty (then its bound is known)."""
        if len(reader.key) != 1:
            return None
        values = reader.batch_column(rows, reader.key[0])
        if not all(type(v) is int for v in values):
            return None
        if not rt.mirror_bounded and self.store.mirror_empty(rt.id):
            rt.mirror_bounded, rt.mirror_ceiling = True, None
        return values

    def _enqueue(
        self,
        conn: Any,
        rt: TaskRuntime,
        seq: int,
        columns: list[str],
        ops: list[str],
        rows: list[tuple[Any, ...]] | pa.Table,
    ) -> None:
        assert self.signer is not None
        counts = {op: ops.count(op) for op in package.OPS if op in ops}
        blob = package.build(
            self.signer,
            task_id=rt.id,
            seq=seq,
            columns=columns,
            key=rt.spec["config"]["key"],
            body=package.encode_rows(columns, ops, rows),
            counts=counts,
            cipher=self.cipher,
            cipher_key=self.cipher_key,
            wrap=self.hub_opens_data_keys,
        )
        self.store.enqueue(
            conn, rt.id, seq, blob, len(rows), time.time(), encrypted_tail=package.keyed_tail(blob)
        )

    def _key_tally(self, rt: TaskRuntime) -> KeyTally:
        return KeyTally(self._reader(rt).live_key_strings())

    def detect_deletions(self, rt: TaskRuntime, keys: KeyTally | None = None) -> int:
        """Key-set comparison: keys sent before that the source no longer has (``keys``:
        the source's live keys, when the caller also wants their checksum)."""
        reader = self._reader(rt)
        missing = self.store.missing_keys(rt.id, keys or reader.live_key_strings())
        self.store.set_keyset_time(rt.id, time.time())
        batch = int(rt.spec["config"].get("batch_rows", 50_000))
        for start in range(0, len(missing), batch):
            chunk = missing[start : start + batch]
            rows = [tuple(k.split("\x1f")) for k in chunk]
            with self.store.transaction() as conn:
                seq = self.store.next_seq(conn, rt.id)
                self._enqueue(conn, rt, seq, list(reader.key), ["D"] * len(rows), rows)
                self.store.remove_keys(conn, rt.id, chunk)
        return len(missing)

    def _extract_and_upload(self, rt: TaskRuntime, deadline: float) -> bool:
        """Extract batches until none is full or ``deadline`` passes, each full one's
        upload running beside the extraction of the next (one upload at a time, in
        sequence order, on a store connection of its own). An upload's failure stops the
        extraction and is raised. True when the source had no more changed rows."""
        uploading: Future[int] | None = None
        side: sqlite3.Connection | None = None
        caught_up = False
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload") as pool:
            try:
                while True:
                    if not self.extract_batch(rt):
                        caught_up = True
                        break
                    if uploading is not None:
                        uploading.result()
                    side = side or self.store.connect()
                    uploading = pool.submit(self.upload_pending, side)
                    if time.monotonic() >= deadline:
                        break
            finally:
                if uploading is not None:
                    futures.wait([uploading])
                if side is not None:
                    side.close()
        if uploading is not None:
            uploading.result()
        return caught_up

    def upload_pending(self, store_conn: sqlite3.Connection | None = None) -> int:
        """Send the outbox in order; ``store_conn`` when called beside the agent's thread."""
        sent = 0
        for task_id, seq, blob in self.store.pending(conn=store_conn):
            try:
                self.client.upload(blob)
            except HubRefused as exc:
                rt = self.tasks.get(task_id)
                log.error("package refused by hub", task=task_id, seq=seq, error=str(exc))
                if rt is not None:
                    rt.error = str(exc)[:500]
                break
            self.store.sent(task_id, seq, store_conn)
            sent += 1
        return sent

    # -- subscriber: hub → target table ------------------------------------------------------------

    def _writer(self, rt: TaskRuntime) -> TargetWriter:
        if rt.writer is None or rt.built_for != rt.spec["config_version"]:
            config = rt.spec["config"]
            rt.writer = TargetWriter(
                self.engine(config["target"], target=True),
                rt.id,
                config,
                list(rt.spec.get("source_key") or []),
                fast_read=self.config.targets[config["target"]].fast_read,
            )
            rt.built_for = rt.spec["config_version"]
        return rt.writer

    def run_subscriber(self, rt: TaskRuntime, *, budget_seconds: float = 5.0) -> None:
        if rt.spec["config"].get("folder"):
            files.run_file_subscriber(self, rt, budget_seconds=budget_seconds)
            return
        writer = self._writer(rt)
        applied = writer.applied_seq()
        hub_acked = int(rt.spec.get("acked_seq", 0))
        # Applied but not acknowledged (we stopped between the two): acknowledge again.
        for seq in range(hub_acked + 1, applied + 1):
            got = self.client.next_package(rt.id, seq - 1)
            if got is None:
                break
            data = package.decode_columns(package.parse(got[0]).open(got[1], self.cipher_key))
            ops = data.column(package.OP_COLUMN).to_pylist()
            self.client.ack(
                rt.id,
                seq,
                {"inserted": ops.count("I"), "updated": ops.count("U"), "deleted": ops.count("D")},
            )
            rt.spec["acked_seq"] = seq
        started = time.monotonic()
        ahead: Future[tuple[bytes, str] | None] | None = None
        fetched = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fetch") as pool:
            try:
                while time.monotonic() - started < budget_seconds:
                    if rt.hold_at is not None and applied >= rt.hold_at:
                        return
                    if ahead is not None:
                        got, ahead = ahead.result(), None
                    else:
                        wait = self._poll_wait(rt)
                        self.client.heard_mark = self.assignment_mark
                        got = self.client.next_package(
                            rt.id, applied, wait=wait, known=self.assignment_mark
                        )
                        # Having waited at the hub, ask again at once: the hub answers
                        # as a package arrives instead of at the next scheduled poll.
                        rt.again_now = wait > 0
                    if got is None:
                        self._heard(self.client.heard_mark)
                        return
                    fetched += 1
                    blob, provider_key = got
                    pkg = package.parse(blob)
                    data = package.decode_columns(pkg.open(provider_key, self.cipher_key))
                    if (
                        fetched > 1
                        and time.monotonic() - started < budget_seconds
                        and (rt.hold_at is None or pkg.seq < rt.hold_at)
                    ):
                        # Packages are waiting (two came one after the other): the hub
                        # prepares the next one while this one is written. A subscriber
                        # that keeps up asks only after writing, as often as before.
                        ahead = pool.submit(self.client.next_package, rt.id, pkg.seq)
                    counts = writer.apply(pkg.seq, data)
                    if counts is not None:
                        rt.rows_moved += data.num_rows
                        self.client.ack(rt.id, pkg.seq, counts)
                        rt.spec["acked_seq"] = pkg.seq
                    applied = pkg.seq
            finally:
                if ahead is not None:
                    futures.wait([ahead])

    def _poll_wait(self, rt: TaskRuntime) -> float:
        """How long a subscriber may wait at the hub for its next package without holding
        up the agent's other duties: the next heartbeat and every other task's next run."""
        return 0.0 if rt.hold_at is not None else self._idle_seconds(but=rt)

    def _idle_seconds(self, *, but: TaskRuntime | None = None) -> float:
        """Seconds until the agent's next duty other than task ``but``'s (at most
        ``LONG_POLL_SECONDS``); 0 when a checksum is pending or the hub is not reached
        over HTTP."""
        if self.config.transport != "http" or self.pending_checksums:
            return 0.0
        now = time.monotonic()
        limits = [LONG_POLL_SECONDS, self.next_heartbeat - now]
        limits += [
            other.next_run - now
            for other in self.tasks.values()
            if other is not but and other.running
        ]
        return max(0.0, min(limits))

    # -- gatekeeper (网闸) ----------------------------------------------------------------------

    def export_packages(self, directory: Path) -> int:
        """Move every waiting package into ``directory`` as a file (written atomically)."""
        directory.mkdir(parents=True, exist_ok=True)
        count = 0
        for task_id, seq, blob in self.store.pending(limit=1_000_000):
            path = directory / f"node{self.config.node_id}-task{task_id}-{seq:012d}.gspkg"
            tmp = path.with_suffix(".part")
            tmp.write_bytes(blob)
            tmp.rename(path)
            self.store.sent(task_id, seq)
            count += 1
        return count

    def import_packages(self, directory: Path) -> int:
        """Apply hub-exported packages for this node's subscriber tasks; write acks."""
        tasks_file = directory / f"tasks-node{self.config.node_id}.json"
        if tasks_file.exists():
            (self.config.store / "tasks.json").write_text(
                tasks_file.read_text(encoding="utf-8"), encoding="utf-8"
            )
            self.apply_assignments(json.loads(tasks_file.read_text(encoding="utf-8")))
        applied_count = 0
        acks = []
        for path in sorted(directory.glob(f"to-node{self.config.node_id}-task*.gspkg")):
            meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
            rt = self.tasks.get(int(meta["task_id"]))
            if rt is None:
                continue
            pkg = package.parse(path.read_bytes())
            data = package.decode_columns(pkg.open(meta["provider_key"], self.cipher_key))
            counts = self._writer(rt).apply(pkg.seq, data)
            if counts is not None:
                applied_count += 1
                acks.append({"task_id": rt.id, "seq": pkg.seq, **counts})
        if acks:
            out = directory / f"acks-node{self.config.node_id}-{int(time.time() * 1000)}.json"
            out.write_text(json.dumps(acks), encoding="utf-8")
        return applied_count

    def close(self) -> None:
        self.client.close()
        for rt in self.tasks.values():
            if rt.reader is not None:
                rt.reader.close()
        for engine in self.engines.values():
            engine.dispose()
        self.store.close()
