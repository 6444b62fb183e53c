"""Packages on NATS JetStream: the scale-out exchange log (``GOVSHARE_BUS_URL=nats://…``).

The hub database still keeps one ``ExchangePackage`` row per package (order, acks,
reconciliation); the bytes go to one file-backed stream and the row keeps the stream
sequence in ``bus_seq``.

Layout of the stream ``GOVSHARE_EXCHANGE`` (subjects ``govshare.exchange.>``):

* ``govshare.exchange.task.<task_id>``: one message per package, with the header
  ``Nats-Msg-Id: <task_id>-<seq>`` so that a publish repeated within the duplicate
  window (after a lost answer or a rolled-back request) is stored once. A package that
  fits in one NATS message is the message body; a larger one is a *manifest* whose body
  lists the stream sequences of its parts (header ``Govshare-Parts``).
* ``govshare.exchange.part.<task_id>``: the parts of large packages, at most
  ``min(1 MiB, server max_payload)`` each, ``Nats-Msg-Id: <task_id>-<seq>.<i>``.

Packages are split rather than the server's ``max_payload`` raised: NATS caps
``max_payload`` at 64 MiB (headers included) while the hub accepts bigger uploads, and
messages of many megabytes stall every other message on the same client connection,
route and Raft log. With parts, any server configuration works, default included.

Every message carries ``Govshare-Sha256`` and ``Govshare-Size`` of the whole package;
``get`` checks them and the message id after reassembly, so a stream that was recreated
(sequences reused) can never serve another package in place of the right one.

Callers are synchronous and run on many threads, so one asyncio event loop runs in a
daemon thread and calls are submitted with ``asyncio.run_coroutine_threadsafe``. nats-py
reconnects by itself; a connection that was closed is replaced on the next call. Each
call retries transient failures (no stream leader during an election, a server going
away) until its deadline, then raises ``BusUnavailable`` (HTTP 503): the package is
refused, the request's transaction rolls back and the node sends it again later.

The URL is one or more server URLs separated by commas (members of one cluster), with
optional query parameters anywhere: ``replicas`` (stream replicas when the stream is
created; default the number of servers listed, at most 3), ``timeout`` (seconds a put
or get may take before it fails, default 10; large packages get one more second per
MiB) and ``stream`` (stream name).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RawStreamMsg, StorageType, StreamConfig
from sqlalchemy.orm import Session

from govshare.errors import GovshareError
from govshare.exchange.models import ExchangePackage

log = structlog.get_logger()

T = TypeVar("T")

STREAM = "GOVSHARE_EXCHANGE"
SUBJECTS = "govshare.exchange.>"
PART_BYTES = 1024 * 1024
HEADER_ROOM = 4096  # headers of one message, well above what we send
DUPLICATE_WINDOW_SECONDS = 120.0
PARALLEL_PARTS = 4
RETRY_PAUSE_SECONDS = 0.2

_RETRYABLE = (
    nats.errors.TimeoutError,  # no answer in time (also asyncio.TimeoutError)
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.errors.NoServersError,
    nats.js.errors.NoStreamResponseError,  # no stream leader right now
    nats.js.errors.ServiceUnavailableError,
    OSError,
)


class BusUnavailable(GovshareError):
    """The exchange bus did not take or give a package in time: try again later."""

    status = 503
    code = "bus_unavailable"


@dataclass(frozen=True)
class BusConfig:
    servers: list[str]
    stream: str = STREAM
    replicas: int = 1
    timeout: float = 10.0


def parse_bus_url(bus_url: str) -> BusConfig:
    """``nats://h1:4222,nats://h2:4222?replicas=3&timeout=5`` → servers and options."""
    servers: list[str] = []
    options: dict[str, str] = {}
    for part in (p.strip() for p in bus_url.split(",")):
        if not part:
            continue
        url = urlsplit(part if "://" in part else f"nats://{part}")
        options.update(parse_qsl(url.query))
        servers.append(urlunsplit((url.scheme, url.netloc, "", "", "")))
    if not servers:
        raise ValueError("bus URL names no NATS server")
    unknown = set(options) - {"replicas", "timeout", "stream"}
    if unknown:
        raise ValueError(f"bus URL: unknown option(s) {', '.join(sorted(unknown))}")
    try:
        replicas = int(options.get("replicas", min(3, len(servers))))
        timeout = float(options.get("timeout", 10))
    except ValueError as exc:
        raise ValueError(f"bus URL: {exc}") from None
    if not 1 <= replicas <= 5 or timeout <= 0:
        raise ValueError("bus URL: replicas must be 1..5 and timeout positive")
    return BusConfig(
        servers=servers,
        stream=options.get("stream", STREAM),
        replicas=replicas,
        timeout=timeout,
    )


class NatsStore:
    """Package store on a JetStream stream; see the module docstring for the layout."""

    def __init__(
        self,
        bus_url: str,
        *,
        timeout: float | None = None,
        replicas: int | None = None,
        part_bytes: int = PART_BYTES,
    ) -> None:
        config = parse_bus_url(bus_url)
        self.servers = config.servers
        self.stream = config.stream
        self.replicas = replicas or config.replicas
        self.timeout = timeout or config.timeout
        self.part_bytes = part_bytes
        self._nc: Client | None = None
        self._lock: asyncio.Lock | None = None
        self._closed = False
        self._inflight: set[concurrent.futures.Future[Any]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="govshare-nats", daemon=True
        )
        self._thread.start()
        # Connect in the background so the first package does not wait for it; a
        # failure here is only logged, the first call tries again.
        self._submit(self._warm_up())

    # -- the synchronous interface (PackageStore) ---------------------------------------

    def put(self, _session: Session, row: ExchangePackage, blob: bytes) -> None:
        seconds = self._budget(len(blob))
        row.bus_seq = self._call(
            lambda: self._put(row.task_id, row.seq, blob, seconds),
            seconds,
            f"数据包 {row.task_id}/{row.seq} 未能写入交换总线，请稍后重发",
        )
        row.payload = None

    def get(self, _session: Session, row: ExchangePackage) -> bytes:
        if row.bus_seq is None:
            if row.payload is not None:  # logged before the hub moved to the bus
                return row.payload
            raise LookupError(f"package {row.task_id}/{row.seq} has no bus sequence")
        seconds = self._budget(row.size)
        return self._call(
            lambda: self._get(row.task_id, row.seq, row.bus_seq or 0, seconds),
            seconds,
            f"数据包 {row.task_id}/{row.seq} 未能从交换总线读取，请稍后再试",
        )

    def discard(self, _session: Session, row: ExchangePackage) -> None:
        """Delete the package's messages (its parts first) from the stream."""
        row.payload = None
        if row.bus_seq is None:
            return
        seconds = self._budget(0)
        self._call(
            lambda: self._delete(row.task_id, row.seq, row.bus_seq or 0, seconds),
            seconds,
            f"数据包 {row.task_id}/{row.seq} 未能从交换总线删除，下次清理时再试",
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for pending in list(self._inflight):
            pending.cancel()
        future = asyncio.run_coroutine_threadsafe(self._disconnect(), self._loop)
        try:
            future.result(timeout=5)
        except Exception as exc:  # closing must not fail a shutdown
            log.warning("nats_close_failed", error=repr(exc))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._finish_tasks()
            self._loop.close()

    def _finish_tasks(self) -> None:
        """Cancel what still runs on the stopped loop and let it unwind, here.

        A connect to servers that are gone can still be cancelling (closing its client)
        when the loop stops; left pending, its coroutine would be destroyed later by the
        garbage collector, in whatever thread, where its cleanup finds no loop ("coroutine
        ignored GeneratorExit", an unraisable error)."""
        pending = asyncio.all_tasks(self._loop)
        if not pending:
            return
        for task in pending:
            task.cancel()
        try:
            self._loop.run_until_complete(asyncio.wait(pending, timeout=3))
        except Exception as exc:  # closing must not fail a shutdown
            log.warning("nats_close_failed", error=repr(exc))

    # -- plumbing between threads ---------------------------------------------------------

    def _budget(self, size: int) -> float:
        return self.timeout + size / (1024 * 1024)

    def _call(self, make: Callable[[], Awaitable[T]], seconds: float, message: str) -> T:
        if self._closed:
            raise BusUnavailable(f"{message}: 连接已关闭 (store closed)")

        async def bounded() -> T:
            return await asyncio.wait_for(make(), seconds)

        future = self._submit(bounded())
        try:
            return future.result(timeout=seconds + 5)
        except (LookupError, BusUnavailable):
            raise
        except TimeoutError:
            future.cancel()
            raise BusUnavailable(f"{message}: 超时 {seconds:.0f} 秒 (timeout)") from None
        except concurrent.futures.CancelledError:  # the store was closed meanwhile
            raise BusUnavailable(f"{message}: 连接已关闭 (store closed)") from None
        except (nats.errors.Error, OSError) as exc:
            raise BusUnavailable(f"{message}: {exc!r}") from exc

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        self._inflight.add(future)
        future.add_done_callback(self._inflight.discard)
        return future

    async def _warm_up(self) -> None:
        try:
            await asyncio.wait_for(self._connection(), self.timeout)
        except Exception as exc:  # the next call connects again and reports
            log.warning("nats_connect_failed", servers=self.servers, error=repr(exc))

    def ping(self) -> str:
        """Whether the stream answers now (for ``/readyz``): its message count, or
        ``BusUnavailable``."""

        async def info() -> str:
            nc = await self._connection()
            found = await nc.jetstream(timeout=self.timeout).stream_info(self.stream)
            n = found.state.messages
            return f"消息流共 {n} 条消息 (stream {self.stream}: {n} messages)"

        return self._call(info, self.timeout, "消息总线不可用 (bus unavailable)")

    # -- connection -----------------------------------------------------------------------

    async def _connection(self) -> Client:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._closed:
                raise nats.errors.ConnectionClosedError
            if self._nc is not None and not self._nc.is_closed:
                return self._nc
            nc = Client()

            async def on_error(exc: Exception) -> None:
                log.warning("nats_error", error=repr(exc))

            async def on_disconnected() -> None:
                if not self._closed:
                    log.warning("nats_disconnected")

            async def on_reconnected() -> None:
                url = nc.connected_url
                log.info("nats_reconnected", server=url.netloc if url else None)

            try:
                await nc.connect(
                    servers=self.servers,
                    name="govshare-hub",
                    connect_timeout=2,
                    reconnect_time_wait=1,
                    max_reconnect_attempts=-1,  # keep trying; each call has its deadline
                    ping_interval=10,  # find a silently dead server in ~30 s, not minutes
                    max_outstanding_pings=3,
                    pending_size=(PARALLEL_PARTS + 2) * PART_BYTES,
                    error_cb=on_error,
                    disconnected_cb=on_disconnected,
                    reconnected_cb=on_reconnected,
                )
            except BaseException:
                await nc.close()
                raise
            try:
                await self._ensure_stream(nc.jetstream(timeout=self.timeout))
            except BaseException:
                await nc.close()
                raise
            self._nc = nc
            return nc

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        try:
            await js.stream_info(self.stream)
            return
        except nats.js.errors.NotFoundError:
            pass
        config = StreamConfig(
            name=self.stream,
            subjects=[SUBJECTS],
            storage=StorageType.FILE,
            num_replicas=self.replicas,
            # Packages are kept like the embedded table keeps them; should an operator
            # set limits, publishing fails rather than silently dropping old packages.
            discard=DiscardPolicy.NEW,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
            allow_direct=True,
        )
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await js.stream_info(self.stream)  # another hub process created it first
        log.info("nats_stream_created", stream=self.stream, replicas=self.replicas)

    async def _disconnect(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # a connect in progress was cancelled and lets go
            if self._nc is not None and not self._nc.is_closed:
                await self._nc.close()

    async def _retry(self, op: Callable[[JetStreamContext, float], Awaitable[T]], end: float) -> T:
        """Run ``op`` until it succeeds or the deadline passes, reconnecting as needed."""
        loop = asyncio.get_running_loop()
        retried = False
        while True:
            left = end - loop.time()
            if left <= 0:
                raise nats.errors.TimeoutError
            try:
                nc = await asyncio.wait_for(self._connection(), left)
                if not nc.is_connected:
                    # Do not queue messages while reconnecting: they would reach the
                    # stream after this call has failed.
                    raise nats.errors.ConnectionReconnectingError
                wait = max(0.1, min(left, 5.0))
                return await op(nc.jetstream(timeout=wait), wait)
            except _RETRYABLE as exc:
                if end - loop.time() <= RETRY_PAUSE_SECONDS:
                    log.warning("nats_gave_up", error=repr(exc))
                    raise
                if not retried:
                    log.info("nats_retrying", error=repr(exc))
                    retried = True
                await asyncio.sleep(RETRY_PAUSE_SECONDS)

    # -- put ------------------------------------------------------------------------------

    async def _put(self, task_id: int, seq: int, blob: bytes, seconds: float) -> int:
        end = asyncio.get_running_loop().time() + seconds
        nc = await asyncio.wait_for(self._connection(), seconds)
        body_max = min(self.part_bytes, nc.max_payload) - HEADER_ROOM
        msg_id = f"{task_id}-{seq}"
        sha = hashlib.sha256(blob).hexdigest()
        headers = {
            "Nats-Msg-Id": msg_id,
            "Govshare-Sha256": sha,
            "Govshare-Size": str(len(blob)),
        }
        if len(blob) <= body_max:
            body = blob
        else:
            parts = [blob[i : i + body_max] for i in range(0, len(blob), body_max)]
            gate = asyncio.Semaphore(PARALLEL_PARTS)

            async def put_part(i: int, part: bytes) -> int:
                async with gate:
                    return await self._publish(
                        f"govshare.exchange.part.{task_id}",
                        part,
                        {"Nats-Msg-Id": f"{msg_id}.{i}", "Govshare-Part": f"{i}/{len(parts)}"},
                        end,
                    )

            seqs = await asyncio.gather(*(put_part(i, p) for i, p in enumerate(parts)))
            body = ",".join(map(str, seqs)).encode()
            headers["Govshare-Parts"] = str(len(parts))
        return await self._publish(
            f"govshare.exchange.task.{task_id}", body, headers, end, sha256=sha
        )

    async def _publish(
        self,
        subject: str,
        body: bytes,
        headers: dict[str, str],
        end: float,
        *,
        sha256: str | None = None,
    ) -> int:
        async def attempt(js: JetStreamContext, wait: float) -> Any:
            return await js.publish(
                subject, body, timeout=wait, stream=self.stream, headers=dict(headers)
            )

        ack = await self._retry(attempt, end)
        if ack.duplicate and sha256 is not None:
            # The same (task, seq) was published within the duplicate window: make sure
            # it is this package and not another one that was rolled back at the hub.
            stored = await self._message(int(ack.seq), end)
            if (stored.headers or {}).get("Govshare-Sha256") != sha256:
                raise BusUnavailable(
                    f"交换总线上已有内容不同的数据包 {headers['Nats-Msg-Id']} "
                    f"(duplicate window {DUPLICATE_WINDOW_SECONDS:.0f}s)"
                )
        return int(ack.seq)

    # -- get ------------------------------------------------------------------------------

    async def _get(self, task_id: int, seq: int, bus_seq: int, seconds: float) -> bytes:
        end = asyncio.get_running_loop().time() + seconds
        msg_id = f"{task_id}-{seq}"
        head = await self._message(bus_seq, end)
        headers = head.headers or {}
        if headers.get("Nats-Msg-Id") != msg_id:
            raise LookupError(
                f"bus message {bus_seq} is not package {msg_id} "
                f"(found {headers.get('Nats-Msg-Id')!r}): was the stream recreated?"
            )
        body = head.data or b""
        if "Govshare-Parts" in headers:
            seqs = [int(s) for s in body.decode().split(",")]
            gate = asyncio.Semaphore(PARALLEL_PARTS * 2)

            async def get_part(i: int, part_seq: int) -> bytes:
                async with gate:
                    msg = await self._message(part_seq, end)
                found = (msg.headers or {}).get("Nats-Msg-Id")
                if found != f"{msg_id}.{i}":
                    raise LookupError(f"bus message {part_seq} is not part {i} of {msg_id}")
                return msg.data or b""

            body = b"".join(await asyncio.gather(*(get_part(i, s) for i, s in enumerate(seqs))))
        if str(len(body)) != headers.get("Govshare-Size") or hashlib.sha256(
            body
        ).hexdigest() != headers.get("Govshare-Sha256"):
            raise LookupError(f"package {msg_id} on the bus fails its size or SHA-256 check")
        return body

    async def _delete(self, task_id: int, seq: int, bus_seq: int, seconds: float) -> None:
        end = asyncio.get_running_loop().time() + seconds
        try:
            head = await self._message(bus_seq, end)
        except LookupError:
            return  # gone already (deleted before a rollback, or the stream was purged)
        headers = head.headers or {}
        if headers.get("Nats-Msg-Id") != f"{task_id}-{seq}":
            return  # another package's message (a recreated stream): not ours to delete
        parts = (
            [int(s) for s in (head.data or b"").decode().split(",")]
            if "Govshare-Parts" in headers
            else []
        )
        for message in [*parts, bus_seq]:

            async def attempt(js: JetStreamContext, _wait: float, message: int = message) -> None:
                # NotFound: deleted by an earlier attempt.
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await js.delete_msg(self.stream, message)

            await self._retry(attempt, end)

    async def _message(self, bus_seq: int, end: float) -> RawStreamMsg:
        async def attempt(js: JetStreamContext, _wait: float) -> RawStreamMsg:
            try:
                # Any replica may answer a direct get ...
                return await js.get_msg(self.stream, seq=bus_seq, direct=True)
            except nats.js.errors.NotFoundError:
                # ... and a follower may not have the newest message yet: the leader has.
                pass
            try:
                return await js.get_msg(self.stream, seq=bus_seq)
            except nats.js.errors.NotFoundError:
                raise LookupError(
                    f"message {bus_seq} is not in stream {self.stream} (deleted or purged?)"
                ) from None

        return await self._retry(attempt, end)
