"""Aggregate states as a log follower reads the notification log in order.

The outbox and the projections need, for each stored domain event, the state of
its aggregate right after it (an integration event carries the room's whole
state; a view row is the aggregate's current shape).  Reloading the aggregate
at that version from the store for every event costs a query and a replay each
time; following the log in order, the next event applies to the state the
previous one left, so the state is advanced in memory.  An aggregate seen for
the first time, or out of sequence (after a restart mid-history), is loaded once.

A follower that cares for some kinds of aggregate only (the meetings outbox:
meetings, not the service's record of rooms) names them; notifications of other
kinds are passed over by their topic, neither decoded nor applied.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from services.runtime.store import ServiceApplication


class AggregateStates:
    """An LRU of aggregate states, advanced by the events a follower reads."""

    def __init__(
        self,
        app: ServiceApplication,
        maxsize: int = 10_000,
        kinds: tuple[type, ...] | None = None,
    ) -> None:
        self.app = app
        self.maxsize = maxsize
        # An aggregate's events are classes nested in it: their topics start so.
        self._topics = tuple(f"{get_topic(kind)}." for kind in kinds) if kinds else None
        self._states: OrderedDict[UUID, Any] = OrderedDict()
        self.loads = 0  # how often the store had to be asked (tests, metrics)

    def concerns(self, notifications: Sequence[Notification]) -> bool:
        """Whether any notification is of the tracker's `kinds` (by topic, nothing decoded).

        Followers ask it on the event loop: a batch that concerns them not (the
        meetings view reading the service's record of a room) costs no thread hop.
        """
        topics = self._topics
        return topics is None or any(n.topic.startswith(topics) for n in notifications)

    def advance(self, notifications: Sequence[Notification]) -> Iterator[tuple[Any, Any]]:
        """Yield (domain event, aggregate right after it) for each notification, in order.

        Notifications of aggregates not of the tracker's `kinds` are skipped.

        The yielded aggregate is the cached object: use it before asking for the
        next pair (a later event of the same aggregate mutates it).
        """
        for event, state, _ in self.traced(notifications):
            yield event, state

    def traced(
        self, notifications: Sequence[Notification]
    ) -> Iterator[tuple[Any, Any, str | None]]:
        """Like `advance`, with the `traceparent` of the commit that stored each event."""
        mapper = self.app.traced_mapper
        topics = self._topics
        for notification in notifications:
            if topics is not None and not notification.topic.startswith(topics):
                continue
            event, traceparent = mapper.traced_notification(notification)
            yield event, self._after(event), traceparent

    def _after(self, event: Any) -> Any:
        aggregate_id: UUID = event.originator_id
        version: int = event.originator_version
        cached = self._states.get(aggregate_id)
        state: Any
        if cached is not None and cached.version == version - 1:
            state = event.mutate(cached)
        elif cached is None and version == 1:
            state = event.mutate(None)
        else:
            self.loads += 1
            state = self._load(aggregate_id, version)
        self._states[aggregate_id] = state
        self._states.move_to_end(aggregate_id)
        if len(self._states) > self.maxsize:
            self._states.popitem(last=False)
        return state

    def _load(self, aggregate_id: UUID, version: int) -> Any:
        """The aggregate at `version`, from the repository's cached copy where it can be.

        After a restart the consumer or command that just saved an aggregate left it
        in the repository's cache, at the version it loaded; the outbox and the views
        follow right behind.  A load at a version bypasses that cache (a snapshot
        query, an events query, a replay): on a restarted rooms service that was two
        rebuilds per room, most of its CPU per event.  A cached copy at or before
        `version` is brought to it with the events in between (one query), as
        eventsourcing brings a snapshot forward; anything else is rebuilt.
        """
        repository = self.app.repository
        cached = self.app.cached(aggregate_id)
        if cached is None or cached.version > version:
            return repository.get(aggregate_id, version=version)
        state = copy.deepcopy(cached)  # as eventsourcing copies from its cache
        if state.version < version:
            events: Iterable[Any] = repository.event_store.get(
                aggregate_id, gt=state.version, lte=version
            )
            for event in events:
                state = event.mutate(state)
        if state is None or state.version != version:
            return repository.get(aggregate_id, version=version)
        return state

    def forget(self) -> None:
        """Drop every state (after a rebuild or a failed batch)."""
        self._states.clear()
