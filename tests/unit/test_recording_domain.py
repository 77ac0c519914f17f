"""The Recording state machine and the one-recording-per-room rule, without I/O."""

from __future__ import annotations

import pytest

from services.recordings.domain import Recording, RecordingConflict, RecordingNotFound, RoomRecorder


def recording() -> Recording:
    return Recording(
        recording_id="r1--x",
        room_id="r1",
        room_name="R",
        meeting_id="m",
        layout="grid",
        encoding="H264_720P_30",
        object_key="recordings/r1/r1--x.mp4",
        start_date=1,
    )


def test_lifecycle_to_complete() -> None:
    rec = recording()
    assert rec.status == "starting" and rec.filename == "r1--x.mp4"
    rec.activate("EG_1")
    rec.activate("EG_1")  # replayed egress_started
    assert rec.status == "active"
    rec.request_stop(10)
    assert rec.status == "ending"
    assert rec.complete(1234, 9.0, 11) is True
    assert rec.complete(1234, 9.0, 12) is False  # replayed egress_ended
    assert (rec.status, rec.size, rec.duration, rec.end_date) == ("complete", 1234, 9.0, 10)


def test_stop_only_an_active_recording() -> None:
    rec = recording()
    rec.activate()
    rec.request_stop(2)
    with pytest.raises(RecordingConflict) as info:
        rec.request_stop(3)
    assert info.value.error == "recording_not_active"


def test_failure_before_activation_is_an_abort() -> None:
    rec = recording()
    assert rec.fail("egress refused", 2) is True
    assert rec.status == "aborted"
    active = recording()
    active.activate()
    active.fail("disk full", 3)
    assert active.status == "failed" and active.error == "disk full"


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
