"""Administrative events: registrations, revocations, SCIM deprovisioning, the scheduled check.

They go where request recordings go (``recording.py``: the Firehose stream to S3 and the
DynamoDB index), as ``admin`` events of ``wardgate.recording/v1`` indexed under the
connection name ``_admin`` (docs/recording-format.md), so ``wardgate recordings ls
--connection _admin`` lists who revoked whom and why.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wardgate.auditing.chain import EventWriter, RecordChain
from wardgate.errors import ServiceUnavailable
from wardgate.recording import (
    FORMAT,
    INDEX_RETENTION,
    EventStream,
    RecordIndex,
    json_line,
    new_record_id,
)

ADMIN_CONNECTION = "_admin"  # not a valid connection name, so it can never collide with one


@dataclass
class AuditLog:
    stream: EventStream
    index: RecordIndex
    writer: EventWriter = field(default_factory=EventWriter)  # chain and sequence (auditing/chain.py)

    def record(
        self,
        action: str,
        actor: dict[str, Any],
        target: dict[str, Any],
        reason: str = "",
        result: dict[str, Any] | None = None,
        status: int = 200,
        error: dict[str, Any] | None = None,
        request_id: str = "",
        source: str = "cli",
    ) -> str:
        """Write one ``admin`` event and its index entry; raise 503 when either cannot be written."""
        now = time.time()
        record_id = new_record_id(now)
        when = datetime.fromtimestamp(now, UTC)
        event = {
            "format": FORMAT,
            "event": "admin",
            "record_id": record_id,
            "request_id": request_id,
            "time": when.isoformat(),
            "started_at": when.isoformat(),
            "connection": ADMIN_CONNECTION,
            "action": action,
            "source": source,
            "actor": actor,
            "target": target,
            "reason": reason,
            "result": result or {},
            "status": status,
            "error": error,
        }
        entry = {
            "connection": ADMIN_CONNECTION,
            "sort_key": f"{when.isoformat()}#{record_id}",
            "record_id": record_id,
            "started_at": when.isoformat(),
            "subject": str(actor.get("subject") or "-"),
            "method": action,
            "path": json.dumps(target, sort_keys=True, separators=(",", ":"))[:500],
            "status": status,
            "outcome": "admin" if error is None else "refused",
            "error": (error or {}).get("code") or "",
            "duration_ms": 0.0,
            "expires_at": int((when + INDEX_RETENTION).timestamp()),
        }
        sealed = self.writer.seal(event, json_line, RecordChain())  # one event: the whole record
        declarations = self.writer.declarations(json_line)  # what an earlier failed write may have lost
        try:
            try:
                if declarations:
                    self.stream.put_batch([*(d.line for d in declarations), sealed.line])
                else:
                    self.stream.put(sealed.line)
            except Exception:
                self.writer.lost([*declarations, sealed])
                raise
            self.index.put(entry)
        except Exception as exc:
            raise ServiceUnavailable(
                f"the audit trail is unavailable ({type(exc).__name__})", code="recording_unavailable"
            ) from None
        return record_id


def from_settings(settings: Any) -> AuditLog:
    from wardgate.recording import DynamoRecordIndex, FirehoseStream

    return AuditLog(FirehoseStream(settings.recordings_stream), DynamoRecordIndex(settings.recordings_table))
