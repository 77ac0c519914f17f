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

# How long a consumer may stay silent before JetStream redelivers to another replica:
# short, so a killed replica's message moves on within seconds; live handlers send
# progress heartbeats (see services/runtime/consumer.py).
CONSUMER_ACK_WAIT_SECONDS = 5.0
CONSUMER_HEARTBEAT_SECONDS = 2.0
CONSUMER_MAX_DELIVER = -1

# The key-value bucket of platform configuration (webhook subscribers): declared with
# the stream and with as many replicas, so it survives what the stream survives.
CONFIG_BUCKET = "meetplane_config"
CONFIG_BUCKET_HISTORY = 5


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
