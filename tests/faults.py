"""Fault injection at wardgate's AWS boundary, through botocore's own event system.

wardgate's AWS calls all go through botocore clients made from one shared botocore session
(``wardgate.aws.botocore_session()``, the connection store's included). ``FaultInjector.install``
registers handlers on that session *before* any client exists, so every client copies them;
nothing of wardgate is replaced. The handlers

- log every call (service, operation, the resources it names, whether it succeeded, and the
  Firehose records it carried), so tests see what reached AWS and in which order;
- when armed with a ``Dependency`` and a fault kind, fail the matching call, and every later one
  of that dependency, from its ``occurrence``-th call on (a dependency that goes down stays down
  until disarmed):

  ``error``     the service answers 5xx (``InternalServerError``...): botocore raises ClientError;
  ``throttle``  the service answers its throttling error (``ProvisionedThroughputExceededException``...);
  ``slow``      the service never answers: each attempt waits the client's own read timeout,
                then ``ReadTimeoutError`` (botocore's retries and backoff run as they would).

Errors are answered in ``before-call`` (the request never reaches moto, which answers in
``before-send``); the slow fault is raised in ``before-send``, registered first, so moto never
sees the request either. ``hits`` counts the calls that were failed: a test whose fault never
fired proves nothing and must say so.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS = ("error", "throttle", "slow")

# (code, HTTP status) a service answers with when it fails, and when it throttles.
ERRORS: dict[str, tuple[str, int]] = {
    "dynamodb": ("InternalServerError", 500),
    "firehose": ("ServiceUnavailableException", 503),
    "secretsmanager": ("InternalServiceError", 500),
    "stepfunctions": ("ServiceUnavailable", 503),
    "ses": ("ServiceUnavailable", 503),
    "rds-data": ("InternalServerErrorException", 500),
}
THROTTLES: dict[str, tuple[str, int]] = {
    "dynamodb": ("ProvisionedThroughputExceededException", 400),
    "firehose": ("ThrottlingException", 400),
    "secretsmanager": ("ThrottlingException", 400),
    "stepfunctions": ("ThrottlingException", 400),
    "ses": ("Throttling", 400),
    "rds-data": ("ThrottlingException", 400),
}
DEFAULT_ERROR = ("InternalFailure", 500)
DEFAULT_THROTTLE = ("ThrottlingException", 400)

_SPEC = re.compile(
    r"^(?P<service>[a-z0-9-]+):(?P<operation>\w+)(?:\((?P<resource>[^)]*)\))?(?:#(?P<n>\d+))?$"
)


@dataclass(frozen=True, order=True)
class Dependency:
    """One AWS call of a route: ``dynamodb:GetItem(agents)#2`` is the second GetItem on the agents table."""

    service: str
    operation: str
    resource: str = ""  # a label ("agents", "recordings", "demo"...); "" when the call names none
    occurrence: int = 1

    @classmethod
    def parse(cls, spec: str) -> Dependency:
        match = _SPEC.match(spec.strip())
        if match is None:
            raise ValueError(f"not a dependency: {spec!r} (service:Operation(resource)#n)")
        return cls(match["service"], match["operation"], match["resource"] or "", int(match["n"] or 1))

    @property
    def base(self) -> str:
        """The dependency without its occurrence: what a call log names."""
        return f"{self.service}:{self.operation}" + (f"({self.resource})" if self.resource else "")

    def __str__(self) -> str:
        return self.base + (f"#{self.occurrence}" if self.occurrence > 1 else "")


@dataclass
class Call:
    """One AWS call as wardgate made it (retries included: one Call per API call)."""

    service: str
    operation: str
    resources: tuple[str, ...]  # labels (or raw names the injector has no label for)
    thread: str
    started: float
    faulted: str = ""  # the fault kind this call was failed with
    ok: bool | None = None  # None: not finished (or still in flight)
    records: tuple[bytes, ...] = ()  # Firehose: the records it carried

    @property
    def names(self) -> tuple[str, ...]:
        """The dependency names this call matches (one per resource it names)."""
        base = f"{self.service}:{self.operation}"
        return tuple(f"{base}({r})" for r in self.resources) or (base,)


def _resources(service: str, operation: str, params: Mapping[str, Any]) -> tuple[str, ...]:
    """The resources an API call names (tables, streams, secrets, state machines, queues...)."""
    if service == "dynamodb":
        if "TableName" in params:
            return (str(params["TableName"]),)
        if "TransactItems" in params:
            names = {str(v["TableName"]) for item in params["TransactItems"] for v in item.values()}
            return tuple(sorted(names))
        if "RequestItems" in params:
            return tuple(sorted(params["RequestItems"]))
        return ()
    key = {
        "firehose": "DeliveryStreamName",
        "secretsmanager": "SecretId",
        "sqs": "QueueUrl",
        "s3": "Bucket",
        "ses": "Source",
        "rds-data": "resourceArn",
        "stepfunctions": "stateMachineArn",
    }.get(service)
    return (str(params[key]),) if key and key in params else ()


def _records(operation: str, params: Mapping[str, Any]) -> tuple[bytes, ...]:
    if operation == "PutRecord":
        return (bytes(params["Record"]["Data"]),)
    if operation == "PutRecordBatch":
        return tuple(bytes(r["Data"]) for r in params["Records"])
    return ()


class _Response:
    """What ``before-call`` hands botocore instead of an HTTP response (botocore reads the status)."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.content = b""
        self.text = ""


@dataclass
class FaultInjector:
    labels: Callable[[], Mapping[str, str]] = dict  # actual resource name -> label, read when needed
    ignored_threads: tuple[str, ...] = ("wardgate-notifier",)  # background pollers of other flows
    calls: list[Call] = field(default_factory=list)
    hits: int = 0  # calls failed by the armed fault
    slow_attempts: int = 0  # attempts that waited out the read timeout
    watching: bool = False  # log calls (between ``watch()`` and ``stop()``); no cost otherwise
    _armed: tuple[Dependency, str] | None = field(default=None, init=False)
    _seen: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _local: threading.local = field(default_factory=threading.local, init=False)
    _label_cache: dict[str, str] = field(default_factory=dict, init=False)

    # ------------------------------------------------------------------ setup
    def install(self, events: Any) -> None:
        """Register on a botocore session (or a client's ``meta.events``): every call goes through us."""
        register = events.register_first if hasattr(events, "register_first") else events.register
        register("before-parameter-build", self._before_build, unique_id="wardgate-faults-build")
        register("before-call", self._before_call, unique_id="wardgate-faults-call")
        register("before-send", self._before_send, unique_id="wardgate-faults-send")
        register("after-call", self._after_call, unique_id="wardgate-faults-after")
        register("after-call-error", self._after_error, unique_id="wardgate-faults-error")

    def arm(self, dependency: Dependency, kind: str) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self._armed, self._seen = (dependency, kind), 0

    def disarm(self) -> None:
        with self._lock:
            self._armed = None

    def watch(self) -> None:
        """Start a new log (a new cell): forget earlier calls and counters."""
        with self._lock:
            self.calls = []
            self.hits = self.slow_attempts = 0
            self._label_cache = {}
            self.watching = True

    def stop(self) -> None:
        with self._lock:
            self.watching = False
            self._armed = None

    # ------------------------------------------------------------------ reading the log
    def made(self, name: str) -> list[Call]:
        """Calls of dependency ``name`` (``dynamodb:GetItem(agents)``, ``rds-data:ExecuteStatement``)."""
        with self._lock:
            return [c for c in self.calls if name in c.names or f"{c.service}:{c.operation}" == name]

    def delivered(self) -> list[dict[str, Any]]:
        """Every recording event Firehose acknowledged, in the order they were sent."""
        with self._lock:
            calls = [c for c in self.calls if c.service == "firehose" and c.ok]
        return [json.loads(line) for c in calls for line in c.records]

    def settle(self, idle: float = 0.1, timeout: float = 5.0) -> None:
        """Wait until no AWS call has started for ``idle`` seconds and none is in flight."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                last = max((c.started for c in self.calls), default=0.0)
                busy = any(c.ok is None for c in self.calls)
            if not busy and time.monotonic() - last >= idle:
                return
            time.sleep(idle / 2)

    # ------------------------------------------------------------------ botocore handlers
    def _label(self, name: str) -> str:
        if name not in self._label_cache:
            labels = self.labels()
            label = labels.get(name)
            if label is None:  # a secret by ARN, a queue by URL: match on the name's tail
                label = next((v for k, v in labels.items() if name.endswith((f":{k}", f"/{k}"))), name)
            self._label_cache[name] = label
        return self._label_cache[name]

    def _before_build(self, params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        self._local.slow = None
        thread = threading.current_thread().name
        if not self.watching or thread.startswith(self.ignored_threads):
            return
        service = model.service_model.service_name
        operation = model.name
        resources = tuple(self._label(r) for r in _resources(service, operation, params))
        call = Call(
            service, operation, resources, thread, time.monotonic(), records=_records(operation, params)
        )
        with self._lock:
            self.calls.append(call)
            armed = self._armed
            fire = False
            if armed is not None and armed[0].base in call.names:
                self._seen += 1
                fire = self._seen >= armed[0].occurrence
            if fire:
                self.hits += 1
        context["wardgate_call"] = call
        if not fire:
            return
        assert armed is not None
        call.faulted = armed[1]
        if armed[1] == "slow":
            config = context.get("client_config")
            self._local.slow = float(getattr(config, "read_timeout", None) or 60)
        else:
            context["wardgate_fault"] = (service, armed[1])

    def _before_call(self, context: dict[str, Any], **_: Any) -> Any:
        fault = context.get("wardgate_fault")
        if fault is None:
            return None
        service, kind = fault
        code, status = (ERRORS if kind == "error" else THROTTLES).get(
            service, DEFAULT_ERROR if kind == "error" else DEFAULT_THROTTLE
        )
        parsed = {
            "Error": {"Code": code, "Message": f"injected {kind} fault"},
            "ResponseMetadata": {
                "RequestId": "wardgate-fault",
                "HTTPStatusCode": status,
                "HTTPHeaders": {},
                "RetryAttempts": 0,
            },
        }
        return _Response(status), parsed

    def _before_send(self, request: Any, **_: Any) -> None:
        slow = getattr(self._local, "slow", None)
        if slow is None:
            return
        from botocore.exceptions import ReadTimeoutError

        with self._lock:
            self.slow_attempts += 1
        time.sleep(slow)  # the socket waits out the client's read timeout...
        raise ReadTimeoutError(endpoint_url=request.url)  # ...and gives up

    def _after_call(
        self, http_response: Any, parsed: Mapping[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        call = context.get("wardgate_call")
        if call is not None:
            call.ok = http_response.status_code < 300 and not parsed.get("FailedPutCount")

    def _after_error(self, context: dict[str, Any], **_: Any) -> None:
        call = context.get("wardgate_call")
        if call is not None:
            call.ok = False
