"""ARI REST client (blocking, `requests`): the calls the call flow needs, typed errors.

Called from a bounded thread pool by the async call controller (`AriRest.run`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter

from coach.errors import CoachError

T = TypeVar("T")
Json = dict[str, Any]


class AriError(CoachError):
    """An ARI request failed. Retryable for connection errors and 5xx (Asterisk busy/restarting)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, retryable=status is None or status >= 500)
        self.status = status


class AriRest:
    """REST side of ARI under `{base}/ari`, with basic auth and one pooled session."""

    def __init__(
        self, base_url: str, user: str, password: str, *, timeout: float = 5.0, workers: int = 16
    ) -> None:
        self.base = base_url.rstrip("/") + "/ari"
        self.timeout = timeout
        self.session = requests.Session()
        self.session.auth = (user, password)
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=workers)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # Bounded: at most `workers` requests in flight; more wait in the executor's queue.
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ari-rest")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one blocking call of this client on its thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        """Wait for requests in flight, then close the pool and the session."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.session.close()

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """One request; returns the decoded JSON body (None when empty); raises AriError."""
        url = self.base + path
        try:
            resp = self.session.request(
                method, url, params=dict(params or {}), json=body, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise AriError(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("message", resp.text)
            except ValueError:
                detail = resp.text
            raise AriError(f"{method} {path}: {resp.status_code} {detail}", status=resp.status_code)
        if not resp.content:
            return None
        return resp.json()

    # -- channels ------------------------------------------------------------------------------

    def channels(self) -> list[Json]:
        """GET /channels."""
        return list(self.request("GET", "/channels"))

    def channel(self, channel_id: str) -> Json:
        """GET /channels/{id}."""
        return dict(self.request("GET", f"/channels/{channel_id}"))

    def variable(self, channel_id: str, name: str) -> str:
        """GET /channels/{id}/variable: a channel variable or function ("" when unset)."""
        try:
            body = self.request("GET", f"/channels/{channel_id}/variable", {"variable": name})
        except AriError as exc:
            if exc.status == 404:  # unset variable (or no such channel)
                return ""
            raise
        return str((body or {}).get("value", ""))

    def answer(self, channel_id: str) -> None:
        """POST /channels/{id}/answer."""
        self.request("POST", f"/channels/{channel_id}/answer")

    def ring(self, channel_id: str) -> None:
        """POST /channels/{id}/ring (ringback to the caller while the agent rings)."""
        self.request("POST", f"/channels/{channel_id}/ring")

    def hangup(self, channel_id: str, reason: str = "normal") -> None:
        """DELETE /channels/{id}."""
        self.request("DELETE", f"/channels/{channel_id}", {"reason": reason})

    def continue_in_dialplan(self, channel_id: str) -> None:
        """POST /channels/{id}/continue: leave Stasis at the next priority."""
        self.request("POST", f"/channels/{channel_id}/continue")

    def play(self, channel_id: str, media: str, playback_id: str) -> Json:
        """POST /channels/{id}/play."""
        return dict(
            self.request(
                "POST", f"/channels/{channel_id}/play", {"media": media, "playbackId": playback_id}
            )
        )

    def originate(
        self,
        endpoint: str,
        *,
        app: str,
        app_args: str,
        channel_id: str,
        timeout: int,
        caller_id: str | None = None,
    ) -> Json:
        """POST /channels: dial `endpoint` into the Stasis app (StasisStart on answer)."""
        params = {
            "endpoint": endpoint,
            "app": app,
            "appArgs": app_args,
            "channelId": channel_id,
            "timeout": timeout,
        }
        if caller_id:
            params["callerId"] = caller_id
        return dict(self.request("POST", "/channels", params))

    def snoop(self, channel_id: str, *, app: str, app_args: str, snoop_id: str) -> Json:
        """POST /channels/{id}/snoop?spy=in: a channel carrying that party's own voice."""
        params = {
            "spy": "in",
            "whisper": "none",
            "app": app,
            "appArgs": app_args,
            "snoopId": snoop_id,
        }
        return dict(self.request("POST", f"/channels/{channel_id}/snoop", params))

    def external_media(
        self, *, app: str, external_host: str, fmt: str, channel_id: str, data: str
    ) -> Json:
        """POST /channels/externalMedia (RTP over UDP to `external_host`)."""
        params = {
            "app": app,
            "external_host": external_host,
            "format": fmt,
            "channelId": channel_id,
            # encapsulation/transport are the defaults, spelled out; `direction` is left out
            # because older Asterisk versions do not know it.
            "encapsulation": "rtp",
            "transport": "udp",
            "data": data,
        }
        return dict(self.request("POST", "/channels/externalMedia", params))

    def external_media_websocket(self, *, app: str, fmt: str, channel_id: str, data: str) -> Json:
        """POST /channels/externalMedia over chan_websocket, Asterisk as the server: the reply's
        `channelvars.MEDIA_WEBSOCKET_CONNECTION_ID` names `/media/<id>` to connect to."""
        params = {
            "app": app,
            "external_host": "INCOMING",
            "format": fmt,
            "channelId": channel_id,
            "encapsulation": "none",
            "transport": "websocket",
            "connection_type": "server",
            # Only what the caller says, not what Asterisk would play to it.
            "direction": "in",
            "data": data,
        }
        return dict(self.request("POST", "/channels/externalMedia", params))

    def subscribe_channel(self, app: str, channel_id: str) -> None:
        """POST /applications/{app}/subscription: this app gets a channel's events (one that
        is not in Stasis, e.g. a call the dialplan connected without the app)."""
        self.request(
            "POST", f"/applications/{app}/subscription", {"eventSource": f"channel:{channel_id}"}
        )

    # -- bridges -------------------------------------------------------------------------------

    def bridges(self) -> list[Json]:
        """GET /bridges."""
        return list(self.request("GET", "/bridges"))

    def create_bridge(self, bridge_id: str, name: str) -> Json:
        """POST /bridges (mixing)."""
        params = {"type": "mixing", "bridgeId": bridge_id, "name": name}
        return dict(self.request("POST", "/bridges", params))

    def add_channel(self, bridge_id: str, channel_id: str) -> None:
        """POST /bridges/{id}/addChannel (422 if the channel is not in Stasis yet)."""
        self.request("POST", f"/bridges/{bridge_id}/addChannel", {"channel": channel_id})

    def delete_bridge(self, bridge_id: str) -> None:
        """DELETE /bridges/{id}."""
        self.request("DELETE", f"/bridges/{bridge_id}")
