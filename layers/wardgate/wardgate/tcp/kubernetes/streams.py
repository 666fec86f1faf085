"""Watches (``get -w``, ``rollout status``, informers) and followed logs (``logs -f``), streamed.

Decided as the Lambda path decides a list (RBAC attributes, verb ``watch``; a log is ``get
pods/log``), then relayed as the cluster sends it: each watch event (one JSON document per line)
masked on its own (Secrets by position, then the detectors: ``masking/kubernetes.py``), each log
line masked as text. Backpressure: the cluster is read only as fast as the client takes it. The
first events are recorded (bounded), and the count of all of them at the end. A stream is a live
session: the kill switch, the token's expiry (plus the TCP grace) and the maximum duration end
it; a watch then ends with an ``ERROR`` event whose Status says why, so kubectl prints it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from wardgate.apigw import HttpResponse
from wardgate.errors import BadGateway, Forbidden, GatewayError, NotAcceptable
from wardgate.gate import decide_on
from wardgate.masking.engine import MaskingProfile, MaskingRefused, mask_text
from wardgate.masking.kubernetes import mask_kubernetes_body
from wardgate.operations.k8s import K8sOperation
from wardgate.proxies import http as http_proxy
from wardgate.proxies import kubernetes
from wardgate.tcp.guard import cut
from wardgate.tcp.kubernetes.listener import Incoming, KubeConnection
from wardgate.tcp.kubernetes.session import StreamSession, operation_record, recorded_request
from wardgate.tcp.kubernetes.status import error_status, status_object
from wardgate.tcp.sessions import first_to_end

POLICY_RECHECK_S = 1.0  # how soon a stream sees a new policy (the policy cache is 5 s on its own)
RECORDED_EVENTS = 10  # the first events (or log lines) of a stream, as the agent saw them
RECORDED_EVENT_BYTES = 4 * 1024
MAX_LINE = 16 * 1024 * 1024  # one watch event; a log line longer than this is sent in pieces
RELAYED_HEADERS = ("content-type", "cache-control", "audit-id", "x-kubernetes-pf-flowschema-uid")


class MaskedLines:
    """The cluster's body cut into lines, each masked: a watch event, or a line of a log."""

    def __init__(self, watch: bool, profile: MaskingProfile, resource: str | None) -> None:
        self.watch = watch
        self.profile = profile
        self.resource = resource  # secrets: a Table's metadata-only rows are masked as Secrets
        self.pending = b""
        self.lines = 0
        self.counts: dict[str, int] = {}
        self.first: list[str] = []

    def feed(self, chunk: bytes) -> bytes:
        self.pending += chunk
        if b"\n" not in self.pending:
            if len(self.pending) <= MAX_LINE:
                return b""
            if self.watch:
                raise MaskingRefused(f"a watch event is longer than {MAX_LINE} bytes")
            line, self.pending = self.pending, b""
            return self._mask(line)
        *lines, self.pending = self.pending.split(b"\n")
        return b"".join(self._mask(line + b"\n") for line in lines)

    def close(self) -> bytes:
        line, self.pending = self.pending, b""
        return self._mask(line) if line.strip() else line

    def _mask(self, line: bytes) -> bytes:
        if self.watch:
            result = mask_kubernetes_body(line, "application/json", self.profile, resource=self.resource)
            masked = result.value.rstrip(b"\n") + b"\n"
            counts = result.counts
        else:
            text = mask_text(line.decode("utf-8", "surrogateescape"), self.profile)
            masked, counts = text.value.encode("utf-8", "surrogateescape"), text.counts
        for name, n in counts.items():
            self.counts[name] = self.counts.get(name, 0) + n
        self.lines += 1
        if len(self.first) < RECORDED_EVENTS:
            shown = masked.decode("utf-8", "replace").rstrip("\n")
            self.first.append(cut(shown, RECORDED_EVENT_BYTES))
        return masked


class WatchSession(StreamSession):
    """One watch or followed log through the listener."""

    profile: MaskingProfile
    resource: str | None = None
    operation: K8sOperation
    policy_version = ""

    def __init__(self, client: KubeConnection, request: Incoming, connection_name: str) -> None:
        super().__init__(client.services, connection_name, client.peer)
        self.client = client
        self.request = request

    async def serve(self, proxy_path: str, operation: K8sOperation) -> None:
        watch = operation.verb == "watch"
        what = recorded_request(self.request.method, proxy_path, self.request.query)
        try:
            await self.admit(self.request.headers.get("authorization"))
            if not kubernetes.accepts_json(self.request.headers.get("accept", "")):
                raise NotAcceptable(
                    "wardgate streams JSON only (it masks what it relays): accept application/json",
                    code="protobuf_not_served",
                )
            policy_set = await self.services.policy_set()
            decision = decide_on(policy_set, self.identity, self.connection, operation)
            if decision.outcome == "require_approval":
                raise Forbidden(
                    f"{decision.reason}; a {'watch' if watch else 'followed log'} cannot wait for approval: "
                    "ask for it with a request that can (a get or list)",
                    code="approval_required",
                )
            if decision.outcome != "allow":
                raise Forbidden(decision.reason, code="denied_by_policy")
            profile = self.profile = self.profile_of(policy_set)
            self.operation, self.policy_version = operation, policy_set.version
            credential = await self._credential()
            path = http_proxy.normalise_path(proxy_path)
            query = http_proxy.check_query(self.request.query)
            await self.open(
                request=what,
                operation=operation_record(operation),
                decision=decision.to_record(),
                stream="watch" if watch else "log",
            )
        except GatewayError as refused:
            await self.refused(refused, request=what)
            await self.client.respond(
                error_status(refused, self.record.record_id), method=self.request.method
            )
            return
        self.resource = operation.resource
        lines = MaskedLines(watch, profile, operation.resource)
        try:
            await self._relay(path, query, credential, lines)
        finally:
            await self.close(
                events=lines.lines,
                first_events=lines.first,
                masked=lines.counts,
            )

    async def _credential(self) -> Any:
        secret = self.connection.credential_secret
        if not secret:
            return None
        return await asyncio.to_thread(self.services.credentials.get, secret)

    async def _relay(self, path: str, query: str, credential: Any, lines: MaskedLines) -> None:
        from wardgate.tcp.kubernetes.upstream import open_stream

        headers = http_proxy.forwarded_headers(self.request.headers, [], credential, self.record.record_id)
        headers = kubernetes.json_only(headers)
        headers["accept-encoding"] = "identity"  # each line is masked as it comes: nothing to decode
        limits = self.client.listener.gateway.limits
        try:
            upstream = await open_stream(
                self.connection, credential, "GET", path, query, headers, limits.upstream_timeout
            )
        except GatewayError as failed:
            self.record.outcome, self.record.reason = "failed", failed.code
            await self.client.respond(error_status(failed, self.record.record_id))
            return
        try:
            if upstream.header("content-encoding") not in ("", "identity"):
                self.record.outcome, self.record.reason = "failed", "upstream_bad_response"
                unreadable = BadGateway(
                    "the cluster compressed a stream although asked not to: it cannot be masked line by line",
                    code="upstream_bad_response",
                )
                await self.client.respond(error_status(unreadable, self.record.record_id), close=True)
                return
            if upstream.status != 200:
                await self._relay_refusal(
                    upstream.status, await upstream.read_all(), upstream.header("content-type")
                )
                return
            relayed = {k: v for k, v in upstream.headers if k in RELAYED_HEADERS}
            relayed["x-wardgate-record-id"] = self.record.record_id
            await self.client.start_stream(200, relayed)
            pump = asyncio.create_task(self._pump(upstream.body(), lines))
            ended = asyncio.create_task(self.wait_ended())
            gone = asyncio.create_task(self.client.client_gone())
            policy = asyncio.create_task(self._follow_policy(lines))
            try:
                await first_to_end([pump, ended, gone, policy])
            except (MaskingRefused, GatewayError) as failed:
                reason = failed.reason if isinstance(failed, MaskingRefused) else failed.message
                self.terminate(f"the stream was withheld: {reason}", "masking_refused")
            if gone.done() and not gone.cancelled():
                self.client.keep_open = False
                self.ended_reason = self.ended_reason or "the client closed the stream"
                return
            if self.ended_reason is not None:
                await self._end_with_reason(lines.watch)
                return
            await self.client.send_data(lines.close())
            await self.client.end_stream()
        finally:
            upstream.close()

    async def _follow_policy(self, lines: MaskedLines) -> None:
        """A stream lives on under the policy in force: a new policy that no longer allows it ends
        it (its reason in the ERROR event); one that does may change how it is masked."""
        while True:
            await asyncio.sleep(POLICY_RECHECK_S)
            policy_set = await self.services.policy_set()
            if policy_set.version == self.policy_version:
                continue
            decision = decide_on(policy_set, self.identity, self.connection, self.operation)
            if decision.outcome != "allow":
                why = f"the policy in force no longer allows it: {decision.reason}"
                self.terminate(why, "policy_changed")
                return
            self.policy_version = policy_set.version
            lines.profile = self.profile = self.profile_of(policy_set)

    async def _pump(self, body: Any, lines: MaskedLines) -> None:
        async for chunk in body:
            await self.client.send_data(lines.feed(chunk))

    async def _end_with_reason(self, watch: bool) -> None:
        """The client learns why its stream ended: a watch's ERROR event (kubectl prints its
        Status), then the end of the body; the connection is not kept."""
        self.client.keep_open = False
        if watch:
            code = 401 if self.record.reason == "token_expired" else 403
            status = status_object(code, self.ended_reason or "", self.record.reason, self.record.record_id)
            event = json.dumps({"type": "ERROR", "object": status}).encode() + b"\n"
            await self.client.send_data(event)
        await self.client.end_stream()

    async def _relay_refusal(self, status: int, body: bytes, content_type: str) -> None:
        """The cluster's own refusal (a Status: 404, 410 Gone...), masked like any response."""
        try:
            masked = mask_kubernetes_body(
                body, content_type or "application/json", self.profile, resource=self.resource
            )
        except MaskingRefused as refused:
            await self.client.respond(
                error_status(
                    BadGateway(
                        f"the cluster's answer was withheld: {refused.reason}", code="masking_refused"
                    ),
                    self.record.record_id,
                )
            )
            return
        self.record.outcome, self.record.reason = "refused_by_cluster", str(status)
        response = HttpResponse(status, {"content-type": content_type or "application/json"}, masked.value)
        await self.client.respond(response)


async def serve_stream(
    client: KubeConnection, request: Incoming, connection_name: str, proxy_path: str, operation: K8sOperation
) -> None:
    await WatchSession(client, request, connection_name).serve(proxy_path, operation)
