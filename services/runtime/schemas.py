"""JSON schemas and the AsyncAPI document, generated from the contract models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from faststream.nats import JStream, NatsBroker
from faststream.specification import AsyncAPI

from contracts.commands import Reply
from contracts.events import EVENT_TYPES, EventEnvelope
from contracts.streams import STREAM_NAME


def event_schemas() -> dict[str, dict[str, Any]]:
    """JSON schema of the envelope, the reply, and every event's data."""
    schemas = {
        "EventEnvelope": EventEnvelope.model_json_schema(),
        "Reply": Reply.model_json_schema(),
    }
    for name, event_type in EVENT_TYPES.items():
        schema = event_type.model.model_json_schema()
        schema["x-subject"] = event_type.subject
        schema["x-version"] = event_type.version
        schemas[name] = schema
    return schemas


def documented_broker() -> NatsBroker:
    """A broker with one declared publisher per integration event (documentation only)."""
    broker = NatsBroker()
    stream = JStream(STREAM_NAME, declare=False)
    for name, event_type in EVENT_TYPES.items():
        broker.publisher(
            event_type.subject,
            stream=stream,
            title=name,
            description=(event_type.model.__doc__ or "").strip(),
            schema=event_type.model,
        )
    return broker


def asyncapi_document() -> dict[str, Any]:
    """AsyncAPI 3.0 document of the MEETPLANE stream, produced by faststream."""
    spec = AsyncAPI(
        documented_broker(),
        title="meetplane integration events",
        version="1",
        description="Integration events on the MEETPLANE JetStream stream. "
        "Every message is an EventEnvelope whose `data` has the schema below.",
    ).to_specification()
    return cast(dict[str, Any], json.loads(spec.to_json()))


def export_schemas(out: Path) -> list[Path]:
    """Write one JSON schema per model and `asyncapi.json` into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in event_schemas().items():
        path = out / f"{name}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    path = out / "asyncapi.json"
    path.write_text(json.dumps(asyncapi_document(), indent=2, sort_keys=True) + "\n")
    written.append(path)
    return written
