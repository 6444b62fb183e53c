"""The node's HTTP client for the hub: every request signed with the node's key."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import httpx
import orjson

from govshare.security import crypto
from govshare.security.crypto import string_to_sign


class HubUnavailable(Exception):
    """The hub could not be reached or failed (5xx): try again later."""


class HubRefused(Exception):
    """The hub answered 4xx: retrying the same request will not help."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        super().__init__(f"{status} {error.get('code', '')}: {error.get('message', body)}")
        self.status = status
        self.code = str(error.get("code", ""))
        self.body = body


class HubClient:
    def __init__(self, hub_url: str, node_id: int, timeout: float = 60) -> None:
        self.node_id = node_id
        self.timeout = timeout
        self.http = httpx.Client(base_url=hub_url.rstrip("/"), timeout=timeout)
        self.sig_alg: str | None = None
        self.private_key: str | None = None
        self.heard_mark = ""  # the assignment mark a waiting call last brought back

    def close(self) -> None:
        self.http.close()

    def use_key(self, sig_alg: str, private_key: str) -> None:
        self.sig_alg, self.private_key = sig_alg, private_key

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
        signed: bool = True,
    ) -> httpx.Response:
        url = httpx.URL(path, params=params or {})
        headers = {"content-type": content_type} if body else {}
        if signed:
            if not (self.sig_alg and self.private_key):
                raise RuntimeError("node key not loaded: call use_key first")
            ts, nonce = str(int(time.time())), secrets.token_hex(16)
            path_q = url.path + (f"?{url.query.decode()}" if url.query else "")
            signature = crypto.sign(
                self.sig_alg,
                self.private_key,
                string_to_sign(method, path_q, ts, nonce, hashlib.sha256(body).hexdigest()),
            )
            headers |= {
                "X-Node-Id": str(self.node_id),
                "X-Timestamp": ts,
                "X-Nonce": nonce,
                "X-Signature": signature.hex(),
            }
        try:
            resp = self.http.request(method, url, content=body or None, headers=headers)
        except httpx.TransportError as exc:
            raise HubUnavailable(f"hub unreachable: {exc}") from None
        if resp.status_code >= 500:
            raise HubUnavailable(f"hub error {resp.status_code}: {resp.text[:200]}")
        if resp.status_code >= 400:
            try:
                parsed = resp.json()
            except ValueError:
                parsed = {"error": {"message": resp.text[:200]}}
            raise HubRefused(resp.status_code, parsed)
        return resp

    def _json(self, method: str, path: str, payload: Any = None, **kw: Any) -> Any:
        body = orjson.dumps(payload) if payload is not None else b""
        resp = self._send(method, path, body=body, **kw)
        return resp.json() if resp.content else None

    def register(self, token: str, public_keys: dict[str, str]) -> dict[str, Any]:
        return self._json(
            "POST",
            "/api/v1/exchange/nodes/register",
            {"node_id": self.node_id, "token": token, "public_keys": public_keys},
            signed=False,
        )

    def recover_registration(self) -> dict[str, Any]:
        """The registration answer again, asked with a request signed by ``use_key``'s key."""
        return self._json("POST", "/api/v1/exchange/node/registration")

    def rotate_key(self, public_key: str) -> dict[str, Any]:
        """Ask the hub to take ``public_key`` as the node's signing key (signed with
        ``use_key``'s key, which must be the current one)."""
        return self._json("POST", "/api/v1/exchange/node/key", {"public_key": public_key})

    def heartbeat(self, report: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/api/v1/exchange/node/heartbeat", report)

    def upload(self, blob: bytes) -> dict[str, Any]:
        return self._send(
            "POST",
            "/api/v1/exchange/node/packages",
            body=blob,
            content_type="application/octet-stream",
        ).json()

    def next_package(
        self, task_id: int, after: int, *, wait: float = 0.0, known: str = ""
    ) -> tuple[bytes, str] | None:
        """The package after ``after``, or None; ``wait``: seconds the hub may hold the
        request open until one arrives (long poll; a hub that ignores it answers at once).
        With ``known`` (the node's assignment mark) the hub also ends the wait when the
        node's tasks change, and the new mark is left in ``heard_mark``."""
        # This node opens packages whose data key the hub wraps for it (an older hub
        # ignores the parameter and sends the body under the hop's key).
        params: dict[str, Any] = {"after": after, "wrapped": "true"}
        wait = min(wait, self.timeout / 2)
        if wait >= 0.05:
            params["wait"] = f"{wait:.2f}"
            if known:
                params["known"] = known
        resp = self._send(
            "GET", f"/api/v1/exchange/node/tasks/{task_id}/packages/next", params=params
        )
        if resp.status_code == 204:
            self.heard_mark = resp.headers.get("X-Assignment-Mark", self.heard_mark)
            return None
        return resp.content, resp.headers.get("X-Provider-Key", "")

    def wake(self, known: str, *, wait: float) -> str:
        """The node's assignment mark, answered once it differs from ``known`` or after
        ``wait`` seconds (long poll)."""
        wait = min(wait, self.timeout / 2)
        params = {"known": known, "wait": f"{wait:.2f}"}
        answer = self._json("GET", "/api/v1/exchange/node/wake", params=params)
        return str(answer["assignment_mark"])

    def ack(self, task_id: int, seq: int, counts: dict[str, int]) -> dict[str, Any]:
        return self._json(
            "POST", f"/api/v1/exchange/node/tasks/{task_id}/ack", {"seq": seq, **counts}
        )

    def command_result(self, command_id: int, ok: bool, result: dict[str, Any]) -> None:
        self._json(
            "POST",
            f"/api/v1/exchange/node/commands/{command_id}/result",
            {"ok": ok, "result": result},
        )

    def alert(
        self, kind: str, task_id: int | None, message: str, *, resolved: bool = False
    ) -> None:
        self._json(
            "POST",
            "/api/v1/exchange/node/alerts",
            {"kind": kind, "task_id": task_id, "message": message[:2000], "resolved": resolved},
        )
