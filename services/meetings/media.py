"""The media backend port of the meetings service, with a LiveKit and a local implementation.

`LiveKitMediaBackend` talks to a real LiveKit server through the `livekit-api`
SDK.  `LocalMediaBackend` is the embedded default for one machine without
LiveKit: it signs real LiveKit-format tokens with the configured key but ROUTES
NO MEDIA; presence comes from explicit join/leave calls through the API.
"""

from __future__ import annotations

import datetime
import json
from typing import Literal, Protocol

from livekit import api
from pydantic_settings import SettingsConfigDict

from services.runtime.logging import get_logger
from services.runtime.settings import RuntimeSettings
from services.runtime.telemetry import external_call

log = get_logger("meetplane.media")


class MediaSettings(RuntimeSettings):
    """`MEETPLANE_MEDIA_BACKEND`, `MEETPLANE_TOKEN_TTL_SECONDS` (+ shared `MEETPLANE_LIVEKIT_*`)."""

    model_config = SettingsConfigDict(env_prefix="MEETPLANE_", extra="ignore")

    media_backend: Literal["local", "livekit"] = "local"
    token_ttl_seconds: int = 6 * 3600

    def api_url(self) -> str:
        """The server API URL: the client URL with an http(s) scheme."""
        return self.livekit_url.replace("wss://", "https://").replace("ws://", "http://")


class MediaBackendUnavailable(Exception):
    """The media server could not be reached or failed."""

    error = "media_backend_unavailable"


def video_grants(room: str, permissions: dict[str, bool]) -> api.VideoGrants:
    """A role's OpenVidu Meet permissions as LiveKit grants (the one mapping)."""
    sources = []
    if permissions.get("canPublishVideo", True):
        sources.append("camera")
    if permissions.get("canPublishAudio", True):
        sources.append("microphone")
    if permissions.get("canShareScreen", True):
        sources += ["screen_share", "screen_share_audio"]
    return api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=bool(sources),
        can_publish_sources=sources,
        can_subscribe=True,
        can_publish_data=permissions.get("canWriteChat", True),
        room_admin=any(
            permissions.get(p, False)
            for p in ("canKickParticipants", "canEndMeeting", "canMakeModerator")
        ),
        room_record=permissions.get("canRecord", False),
    )


def sign_token(
    settings: MediaSettings,
    room: str,
    identity: str,
    name: str,
    permissions: dict[str, bool],
    metadata: dict[str, object],
) -> str:
    """A LiveKit access token for one participant."""
    return (
        api.AccessToken(settings.livekit_api_key, settings.livekit_api_secret)
        .with_identity(identity)
        .with_name(name)
        .with_grants(video_grants(room, permissions))
        .with_metadata(json.dumps(metadata))
        .with_ttl(datetime.timedelta(seconds=settings.token_ttl_seconds))
        .to_jwt()
    )


class MediaBackend(Protocol):
    """What the meetings service needs from the media layer."""

    settings: MediaSettings

    async def issue_token(
        self,
        room: str,
        identity: str,
        name: str,
        permissions: dict[str, bool],
        metadata: dict[str, object],
    ) -> str:
        """A join token for the participant."""
        ...

    async def list_participants(self, room: str) -> list[str]:
        """Identities present in the room."""
        ...

    async def remove_participant(self, room: str, identity: str) -> None:
        """Disconnect a participant; missing is fine."""
        ...

    async def update_participant_permissions(
        self, room: str, identity: str, permissions: dict[str, bool]
    ) -> None:
        """Apply a new role's permissions to a connected participant."""
        ...

    async def delete_room(self, room: str) -> None:
        """Close the media room, disconnecting everyone; missing is fine."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class _TokenIssuer:
    """Both backends sign the same LiveKit tokens locally."""

    settings: MediaSettings

    async def issue_token(
        self,
        room: str,
        identity: str,
        name: str,
        permissions: dict[str, bool],
        metadata: dict[str, object],
    ) -> str:
        """A LiveKit JWT; LiveKit (when there is one) verifies it when the client connects."""
        return sign_token(self.settings, room, identity, name, permissions, metadata)


def _not_found(exc: Exception) -> bool:
    """LiveKit's "not found" is an answer (no such room or participant), not a failure."""
    return isinstance(exc, api.TwirpError) and exc.code == api.TwirpErrorCode.NOT_FOUND


class LiveKitMediaBackend(_TokenIssuer):
    """A real LiveKit server through the `livekit-api` SDK (RoomService)."""

    def __init__(self, settings: MediaSettings) -> None:
        self.settings = settings
        self._api: api.LiveKitAPI | None = None

    def _client(self) -> api.LiveKitAPI:
        if self._api is None:
            self._api = api.LiveKitAPI(
                self.settings.api_url(),
                self.settings.livekit_api_key,
                self.settings.livekit_api_secret,
            )
        return self._api

    async def list_participants(self, room: str) -> list[str]:
        """RoomService.ListParticipants."""
        try:
            with external_call("livekit", "list_participants", _not_found):
                response = await self._client().room.list_participants(
                    api.ListParticipantsRequest(room=room)
                )
        except api.TwirpError as exc:
            if exc.code == api.TwirpErrorCode.NOT_FOUND:
                return []
            raise MediaBackendUnavailable(str(exc)) from exc
        except Exception as exc:
            raise MediaBackendUnavailable(str(exc)) from exc
        return [p.identity for p in response.participants]

    async def remove_participant(self, room: str, identity: str) -> None:
        """RoomService.RemoveParticipant; not found is fine."""
        await self._call(
            "remove_participant", api.RoomParticipantIdentity(room=room, identity=identity)
        )

    async def update_participant_permissions(
        self, room: str, identity: str, permissions: dict[str, bool]
    ) -> None:
        """RoomService.UpdateParticipant with the role's publish/subscribe rights."""
        grants = video_grants(room, permissions)
        request = api.UpdateParticipantRequest(
            room=room,
            identity=identity,
            permission=api.ParticipantPermission(
                can_publish=grants.can_publish,
                can_subscribe=grants.can_subscribe,
                can_publish_data=grants.can_publish_data,
            ),
        )
        await self._call("update_participant", request)

    async def delete_room(self, room: str) -> None:
        """RoomService.DeleteRoom; not found is fine."""
        await self._call("delete_room", api.DeleteRoomRequest(room=room))

    async def _call(self, method: str, request: object) -> None:
        try:
            with external_call("livekit", method, _not_found):
                await getattr(self._client().room, method)(request)
        except api.TwirpError as exc:
            if exc.code == api.TwirpErrorCode.NOT_FOUND:
                return
            raise MediaBackendUnavailable(f"livekit {method}: {exc}") from exc
        except Exception as exc:
            raise MediaBackendUnavailable(f"livekit {method}: {exc}") from exc

    async def close(self) -> None:
        """Close the SDK's HTTP session."""
        if self._api is not None:
            await self._api.aclose()
            self._api = None


class LocalMediaBackend(_TokenIssuer):
    """Embedded default without a LiveKit server: real tokens, NO media routing.

    Presence is what the meetings service reports through `mark_joined` /
    `mark_left` (join and leave calls of the API), kept in memory.
    """

    def __init__(self, settings: MediaSettings) -> None:
        self.settings = settings
        self.present: dict[str, set[str]] = {}

    def mark_joined(self, room: str, identity: str) -> None:
        """Record presence."""
        self.present.setdefault(room, set()).add(identity)

    def mark_left(self, room: str, identity: str) -> None:
        """Forget presence."""
        self.present.get(room, set()).discard(identity)

    async def list_participants(self, room: str) -> list[str]:
        """Identities marked present."""
        return sorted(self.present.get(room, set()))

    async def remove_participant(self, room: str, identity: str) -> None:
        """Forget presence (there is no connection to cut)."""
        self.mark_left(room, identity)

    async def update_participant_permissions(
        self, room: str, identity: str, permissions: dict[str, bool]
    ) -> None:
        """Nothing to apply without a media server."""

    async def delete_room(self, room: str) -> None:
        """Forget everyone in the room."""
        self.present.pop(room, None)

    async def close(self) -> None:
        """Nothing to release."""


def media_backend(settings: MediaSettings) -> LiveKitMediaBackend | LocalMediaBackend:
    """The configured backend."""
    if settings.media_backend == "livekit":
        return LiveKitMediaBackend(settings)
    return LocalMediaBackend(settings)
