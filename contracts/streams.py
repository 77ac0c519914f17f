"""The JetStream stream every integration event lives in, and consumer defaults.

Declared once (by the launcher in the embedded default, by a Job in Kubernetes);
services bind to it and never redefine it.
"""

from __future__ import annotations

from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from contracts.events import SUBJECT_PREFIX

STREAM_NAME = "MEETPLANE"
STREAM_SUBJECTS = [f"{SUBJECT_PREFIX}.>"]
DUPLICATE_WINDOW_SECONDS = 120.0
MAX_AGE_SECONDS = 30 * 24 * 3600.0

# Consumers fetch up to this many messages at once and handle them in order.
CONSUMER_BATCH = 256
# How long a fetched batch may stay unacknowledged before JetStream offers it again;
# a live consumer sends progress heartbeats while a batch is slow (retries).
CONSUMER_ACK_WAIT_SECONDS = 30.0
CONSUMER_HEARTBEAT_SECONDS = 5.0
CONSUMER_MAX_DELIVER = -1

# Messages a consumer could not handle are parked here, one subject per consumer and
# aggregate: `meetplane.dlq.<consumer>.<aggregate token>` (see services/runtime/dlq.py).
DLQ_STREAM_NAME = "MEETPLANE_DLQ"
DLQ_SUBJECT_PREFIX = "meetplane.dlq"
DLQ_DUPLICATE_WINDOW_SECONDS = 24 * 3600.0


def stream_config(replicas: int = 1, name: str = STREAM_NAME) -> StreamConfig:
    """The MEETPLANE stream: file storage, 2 min duplicate window, retention by age."""
    return StreamConfig(
        name=name,
        subjects=list(STREAM_SUBJECTS),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=MAX_AGE_SECONDS,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        num_replicas=replicas,
    )


def dlq_stream_config(replicas: int = 1, name: str = DLQ_STREAM_NAME) -> StreamConfig:
    """The dead-letter stream: parked messages stay until an operator retries or drops them.

    The duplicate window is a day, so a message parked twice (a crash between parking
    and recording the consumer's position) is stored once.
    """
    return StreamConfig(
        name=name,
        subjects=[f"{DLQ_SUBJECT_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        duplicate_window=DLQ_DUPLICATE_WINDOW_SECONDS,
        num_replicas=replicas,
    )
