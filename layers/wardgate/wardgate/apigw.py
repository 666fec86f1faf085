"""API Gateway HTTP API (payload format 2.0) events in, Lambda proxy responses out."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from wardgate.errors import BadRequest, GatewayError, PayloadTooLarge, Unauthorized

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "+json", "+xml")


@dataclass
class HttpRequest:
    """One agent request as API Gateway (payload 2.0) delivered it, before anything is decided."""

    request_id: str
    method: str
    connection: str
    route: str  # "http" or "k8s": the kind of connection the agent asked for
    proxy_path: str  # still percent-encoded, as the agent sent it, after /{route}/{connection}
    raw_query: str
    headers: dict[str, str]
    cookies: list[str]
    body: bytes
    source_ip: str = ""
    gateway_prefix: str = ""  # the path under which this connection is served, for redirects

    @classmethod
    def from_apigw_v2(cls, event: Mapping[str, Any]) -> HttpRequest:
        try:
            ctx = event["requestContext"]
            raw_path: str = event["rawPath"]
            connection = event["pathParameters"]["connection"]
            stage = ctx.get("stage", "$default")
            body = event.get("body") or ""
            data = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode()
        except (KeyError, TypeError, binascii.Error) as exc:
            raise BadRequest(
                f"malformed API Gateway event ({type(exc).__name__})", code="bad_event"
            ) from None
        if stage != "$default" and raw_path.startswith(f"/{stage}/"):
            raw_path = raw_path[len(stage) + 1 :]
        # "/{route}/{connection}/{proxy+}": everything after the connection segment is the upstream path.
        parts = raw_path.split("/", 3)
        route = parts[1] if len(parts) > 1 else ""
        rest = "/" + parts[3] if len(parts) > 3 else "/"
        prefix = f"/{route}/" + quote(connection, safe="")
        return cls(
            request_id=ctx.get("requestId", ""),
            method=ctx.get("http", {}).get("method", "GET").upper(),
            connection=connection,
            route=route,
            proxy_path=rest,
            raw_query=event.get("rawQueryString", ""),
            headers={k.lower(): v for k, v in (event.get("headers") or {}).items()},
            cookies=list(event.get("cookies") or []),
            body=data,
            source_ip=ctx.get("http", {}).get("sourceIp", ""),
            gateway_prefix=("" if stage == "$default" else f"/{stage}") + prefix,
        )


@dataclass
class HttpResponse:
    """What the function answers: status, headers, body and the upstream's ``Set-Cookie`` values."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    cookies: list[str] = field(default_factory=list)

    def to_apigw_v2(self) -> dict[str, Any]:
        content_type = self.headers.get("content-type", "")
        response: dict[str, Any] = {"statusCode": self.status, "headers": self.headers}
        if self.cookies:
            response["cookies"] = self.cookies
        if any(t in content_type for t in TEXT_TYPES):
            try:
                response.update(body=self.body.decode("utf-8"), isBase64Encoded=False)
                return response
            except UnicodeDecodeError:
                pass
        response.update(body=base64.b64encode(self.body).decode("ascii"), isBase64Encoded=True)
        return response


def error_response(error: GatewayError, request_id: str) -> HttpResponse:
    body = {"error": {"code": error.code, "message": error.message, "request_id": request_id}}
    headers = {"content-type": "application/json", "cache-control": "no-store"}
    if isinstance(error, Unauthorized):
        headers["www-authenticate"] = f'Bearer error="invalid_token", error_description="{error.code}"'
    return HttpResponse(error.status, headers, json.dumps(body).encode())


def check_request_body(body: bytes, limit: int) -> bytes:
    """The request's body, refused (413) over ``limit`` bytes: both gateways check it first."""
    if len(body) > limit:
        raise PayloadTooLarge(f"request body of {len(body)} bytes exceeds the {limit}-byte limit")
    return body
