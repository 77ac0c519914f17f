"""The Recording state machine and the one-recording-per-room rule, without I/O."""

from __future__ import annotations

import pytest

from services.recordings.domain import Recording, RecordingConflict, RecordingNotFound, RoomRecorder


def recording() -> Recording:
    return Recording(
        recording_id="r1--EG_x--1",
        room_id="r1",
        room_name="R",
        meeting_id="m",
        layout="grid",
        encoding="H264_720P_30",
        object_key="recordings/r1/r1--EG_x--1.mp4",
        start_date=1_000,
    )


def test_lifecycle_to_complete() -> None:
    rec = recording()
    assert rec.status == "starting" and rec.filename == "r1--EG_x--1.mp4"
    assert rec.activate("EG_1") is True
    assert rec.activate("EG_1") is False  # replayed egress_started
    assert (rec.status, rec.egress_id) == ("active", "EG_1")
    rec.request_stop(4_500)
    assert (rec.status, rec.duration, rec.details) == ("ending", 3.5, "Stopped using API")
    assert rec.complete(1234, 9.0, 11_000) is True
    assert rec.complete(1234, 9.0, 12_000) is False  # replayed egress_ended
    assert (rec.status, rec.size, rec.duration, rec.end_date) == ("complete", 1234, 9.0, 4_500)
    assert rec.details == "Stopped using API"


def test_stop_only_an_active_recording() -> None:
    rec = recording()
    with pytest.raises(RecordingConflict) as starting:
        rec.request_stop(2)
    assert "cannot be stopped while starting" in str(starting.value)
    rec.activate()
    rec.request_stop(2)
    with pytest.raises(RecordingConflict) as info:
        rec.request_stop(3)
    assert info.value.error == "recording_not_active"
    assert str(info.value) == "Recording 'r1--EG_x--1' is already stopped"


def test_the_service_may_stop_a_starting_recording() -> None:
    rec = recording()
    rec.request_stop(2_000, reason="meeting_ended")
    assert rec.status == "ending" and rec.details == "Stopped because the meeting ended"


def test_limit_reached_is_final_and_says_why() -> None:
    rec = recording()
    rec.activate()
    assert rec.complete(10, 3600.0, 5, limit_reached=True)
    assert rec.status == "limit_reached" and rec.final
    assert "maximum recording duration" in str(rec.details)


def test_failure_before_activation_is_an_abort() -> None:
    rec = recording()
    assert rec.fail("egress refused", 2) is True
    assert rec.status == "aborted"
    assert (rec.size, rec.duration) == (0, 0)  # recordingEnded always carries numbers
    active = recording()
    active.activate()
    active.fail("disk full", 3)
    assert active.status == "failed" and active.error == "disk full"
    stuck = recording()
    stuck.fail("timed out while starting", 4, status="failed")
    assert stuck.status == "failed"


def test_delete_only_finished_recordings_once() -> None:
    rec = recording()
    rec.activate()
    with pytest.raises(RecordingConflict):
        rec.delete()
    rec.request_stop(2)
    rec.complete(1, 1.0, 3)
    rec.delete()
    with pytest.raises(RecordingNotFound):
        rec.delete()


def test_one_recording_per_room() -> None:
    recorder = RoomRecorder(room_id="r1")
    recorder.begin("a")
    with pytest.raises(RecordingConflict) as info:
        recorder.begin("b")
    assert info.value.error == "recording_already_started"
    assert recorder.release("b") is False
    assert recorder.release("a") is True
    recorder.begin("b")


def test_revoking_links_replaces_both_secrets() -> None:
    rec = recording()
    before = (rec.public_secret, rec.private_secret)
    rec.revoke_links("new-public", "new-private", at=5_000)
    assert rec.links_issued_at == 5_000
    assert (rec.public_secret, rec.private_secret) == ("new-public", "new-private") != before
    assert type(rec.collect_events()[-1]).__name__ == "LinksRevoked"
