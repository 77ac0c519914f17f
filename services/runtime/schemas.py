"""JSON schemas and the AsyncAPI document, generated from the contract models."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, cast

from faststream.nats import JStream, NatsBroker
from faststream.specification import AsyncAPI

from contracts.commands import Reply
from contracts.events import EVENT_TYPES, EventEnvelope
from contracts.streams import STREAM_NAME

# Services whose own broker (commands they answer, events they consume and publish) is
# documented; by name, because the runtime imports no service.
SERVICE_ASYNCAPI = {
    "rooms": "services.rooms.main:asyncapi",
    "identity": "services.identity.main:asyncapi",
}


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


def document_publishers(
    broker: NatsBroker, aggregates: tuple[str, ...] | None = None
) -> NatsBroker:
    """Declare one publisher per integration event so AsyncAPI documents what the outbox sends.

    The outbox publishes through `broker.publish`; these declarations exist for
    the specification only.
    """
    stream = JStream(STREAM_NAME, declare=False)
    for name, event_type in EVENT_TYPES.items():
        if aggregates is not None and event_type.aggregate not in aggregates:
            continue
        broker.publisher(
            event_type.subject,
            stream=stream,
            title=name,
            description=(event_type.model.__doc__ or "").strip(),
            schema=event_type.model,
        )
    return broker


def asyncapi_document(broker: NatsBroker | None = None, title: str = "meetplane") -> dict[str, Any]:
    """AsyncAPI 3.0 document produced by faststream from a broker's declarations.

    Without a broker: every integration event on the MEETPLANE stream.
    """
    spec = AsyncAPI(
        broker or document_publishers(NatsBroker()),
        title=title,
        version="1",
        description="Integration events on the MEETPLANE JetStream stream (every message "
        "is an EventEnvelope whose `data` has the schema shown) and request/reply commands.",
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
    documents = {"asyncapi.json": asyncapi_document(title="meetplane integration events")}
    for service, entry in SERVICE_ASYNCAPI.items():
        module, func = entry.split(":")
        try:
            documents[f"asyncapi-{service}.json"] = getattr(importlib.import_module(module), func)()
        except ImportError:
            continue  # service not installed in this build
    for name, document in documents.items():
        path = out / name
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
