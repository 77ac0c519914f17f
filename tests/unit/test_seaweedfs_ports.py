"""A `weed mini` that died because another process took one of its internal ports gets new ones.

Internal ports are picked free and kept in the data dir; a free port is only free
until someone binds it, which happens on a busy machine.  Only the last run's
output counts, and a collision on the S3 port we were given is not "internal".
"""

from __future__ import annotations

from pathlib import Path

from services.runtime.seaweedfs import SPAWN_MARK, SeaweedFS

TAKEN = "F1125 metrics.go:1136 listen tcp 127.0.0.1:{port}: bind: address already in use"


def server(tmp_path: Path, output: str) -> SeaweedFS:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "weed.out").write_text(output)
    return SeaweedFS(data_dir=tmp_path, s3_port=5555, access_key="a", secret_key="b")


def test_an_internal_port_taken_in_the_last_run_is_noticed(tmp_path: Path) -> None:
    assert server(tmp_path, f"{SPAWN_MARK}\n{TAKEN.format(port=44593)}\n").internal_port_taken()


def test_the_s3_port_and_earlier_runs_do_not_count(tmp_path: Path) -> None:
    assert not server(tmp_path, f"{SPAWN_MARK}\n{TAKEN.format(port=5555)}\n").internal_port_taken()
    earlier = f"{SPAWN_MARK}\n{TAKEN.format(port=44593)}\n{SPAWN_MARK}\nready\n"
    assert not server(tmp_path, earlier).internal_port_taken()


def test_a_spawn_after_a_collision_picks_new_ports(tmp_path: Path) -> None:
    weed = server(tmp_path, f"{SPAWN_MARK}\n{TAKEN.format(port=44593)}\n")
    (tmp_path / "ports.json").write_text('{"metricsPort": 44593}')
    weed.command = lambda: ["true"]  # type: ignore[method-assign]
    weed.spawn().wait()
    assert not (tmp_path / "ports.json").exists()
    assert not weed.internal_port_taken()
