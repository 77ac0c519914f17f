"""The embedded NATS's users and permissions, against a real nats-server.

`meetplane up` writes this configuration (services/runtime/nats_auth.py); here a
nats-server runs it and clients sign in as the services do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.msg import Msg

from services.runtime import nats_auth
from services.runtime.dlq import CHANGED_PREFIX
from services.runtime.nats import connection_options, ensure_stream
from services.runtime.natsserver import NatsServer
from services.runtime.settings import RuntimeSettings
from tests.support.infra import free_port
from tests.support.services import wait_for


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NatsServer, Path]]:
    root = tmp_path_factory.mktemp("natsauth")
    config = nats_auth.write_server_config(root, root / "nats-server.conf")
    nats_server = NatsServer(root / "nats", free_port(), config=config)
    nats_server.start()
    yield nats_server, root
    nats_server.stop()


class Client:
    """A NATS connection as one user, collecting the server's asynchronous errors."""

    def __init__(self, nc: nats.NATS, errors: list[str]) -> None:
        self.nc = nc
        self.errors = errors

    async def violation(self, text: str) -> None:
        """Wait until the server reported a permissions violation mentioning `text`."""

        async def reported() -> bool:
            await self.nc.flush()
            return any("permissions violation" in e and text in e for e in self.errors)

        await wait_for(reported, timeout=5, interval=0.02)


async def connect(server: tuple[NatsServer, Path], user: str) -> Client:
    nats_server, root = server
    settings = RuntimeSettings(
        nats_url=nats_server.url,
        nats_user=user,
        nats_password=nats_auth.user_password(root, user),
        nats_inbox_prefix=nats_auth.inbox_prefix(user),
    )
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc).lower())

    options = connection_options(settings, f"test-{user}")
    options.update(max_reconnect_attempts=0, allow_reconnect=False)
    return Client(await nats.connect(**options, error_cb=on_error), errors)


@pytest.fixture
async def clients(server: tuple[NatsServer, Path]) -> AsyncIterator[dict[str, Client]]:
    opened = {user: await connect(server, user) for user in nats_auth.USERS}
    yield opened
    for client in opened.values():
        await client.nc.close()


async def echo(client: Client, subject: str, queue: str = "") -> None:
    async def answer(msg: Msg) -> None:
        await msg.respond(b"reply for " + msg.subject.encode())

    await client.nc.subscribe(subject, queue=queue, cb=answer)
    await client.nc.flush()


async def test_an_unauthenticated_client_is_refused(server: tuple[NatsServer, Path]) -> None:
    with pytest.raises(Exception) as refused:
        await nats.connect(
            server[0].url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2
        )
    assert "authorization" in repr(refused.value).lower() or isinstance(
        refused.value, nats.errors.NoServersError
    )


async def test_a_wrong_password_is_refused(server: tuple[NatsServer, Path]) -> None:
    with pytest.raises(Exception):
        await nats.connect(
            server[0].url,
            user="gateway",
            password="guessed",
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=2,
        )


async def test_a_service_cannot_publish_another_services_events(
    clients: dict[str, Client],
) -> None:
    seen: list[str] = []

    async def record(msg: Msg) -> None:
        seen.append(msg.subject)

    admin = clients["admin"]
    await admin.nc.subscribe("meetplane.evt.>", cb=record)
    # The subscription is live once it receives a message of its own.
    await admin.nc.publish("meetplane.evt.meeting.Probe", b"{}")
    await wait_for(lambda: "meetplane.evt.meeting.Probe" in seen, timeout=10, interval=0.02)
    seen.clear()
    meetings = clients["meetings"]
    await meetings.nc.publish("meetplane.evt.meeting.MeetingEnded", b"{}")
    await meetings.nc.publish("meetplane.evt.room.RoomDeleted", b"{}")
    await meetings.nc.publish("meetplane.evt.user.UserDeleted", b"{}")
    await meetings.violation("meetplane.evt.room.roomdeleted")
    await meetings.violation("meetplane.evt.user.userdeleted")
    try:
        await wait_for(
            lambda: "meetplane.evt.meeting.MeetingEnded" in seen, timeout=10, interval=0.02
        )
    except TimeoutError:
        raise AssertionError(
            f"the allowed event never arrived: seen {seen}; meetings errors {meetings.errors}, "
            f"connected {meetings.nc.is_connected}; admin errors {admin.errors}, "
            f"connected {admin.nc.is_connected}"
        ) from None
    assert seen == ["meetplane.evt.meeting.MeetingEnded"]


async def test_a_service_cannot_call_a_command_it_has_no_business_with(
    clients: dict[str, Client],
) -> None:
    await echo(clients["identity"], "meetplane.cmd.identity.>", "identity")
    await echo(clients["rooms"], "meetplane.cmd.rooms.>", "rooms")
    meetings = clients["meetings"]
    with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError)):
        await meetings.nc.request("meetplane.cmd.identity.login", b"{}", timeout=1)
    await meetings.violation("meetplane.cmd.identity.login")
    with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError)):
        await meetings.nc.request("meetplane.cmd.rooms.list", b"{}", timeout=1)
    # What it needs works, and its reply comes back on its private inbox.
    reply = await meetings.nc.request("meetplane.cmd.rooms.get", b"{}", timeout=2)
    assert reply.data == b"reply for meetplane.cmd.rooms.get"
    # The gateway calls every command.
    reply = await clients["gateway"].nc.request("meetplane.cmd.identity.login", b"{}", timeout=2)
    assert reply.data == b"reply for meetplane.cmd.identity.login"


async def test_a_service_cannot_answer_another_services_commands(
    clients: dict[str, Client],
) -> None:
    meetings = clients["meetings"]
    await meetings.nc.subscribe("meetplane.cmd.identity.>", queue="identity")
    await meetings.violation("meetplane.cmd.identity.>")


@pytest.mark.parametrize("inbox", ["_INBOX.>", "_INBOX_gateway.>", ">"])
async def test_nobody_but_the_caller_reads_its_replies(
    clients: dict[str, Client], inbox: str
) -> None:
    await echo(clients["identity"], "meetplane.cmd.identity.>", "identity")
    spy = clients["meetings"]
    overheard: list[Any] = []

    async def record(msg: Msg) -> None:
        overheard.append(msg.data)

    await spy.nc.subscribe(inbox, cb=record)
    await spy.violation(inbox.lower())
    reply = await clients["gateway"].nc.request("meetplane.cmd.identity.login", b"{}", timeout=2)
    assert reply.data.startswith(b"reply for")
    await spy.nc.flush()
    assert overheard == []


async def test_a_service_uses_jetstream_through_its_private_inbox(
    clients: dict[str, Client],
) -> None:
    admin, rooms = clients["admin"], clients["rooms"]
    await ensure_stream(admin.nc, 1, "MEETPLANE")
    js = rooms.nc.jetstream()
    ack = await js.publish("meetplane.evt.room.RoomCreated", b"{}", stream="MEETPLANE")
    assert ack.seq >= 1
    sub = await js.pull_subscribe("meetplane.evt.room.>", stream="MEETPLANE")
    [message] = await sub.fetch(1, timeout=5)
    await message.ack()
    assert rooms.errors == []


def test_the_table_names_the_subjects_the_runtime_uses() -> None:
    assert nats_auth.DLQ_CHANGED_PREFIX == CHANGED_PREFIX
    from services.runtime.dlq import parked_subject

    rooms = nats_auth.PERMISSIONS["rooms"]
    assert f"{parked_subject('rooms-events', 'x').rsplit('.', 1)[0]}.>" in rooms.publish


async def test_a_service_broker_signs_in_with_its_user(server: tuple[NatsServer, Path]) -> None:
    from services.runtime.nats import make_broker

    nats_server, root = server
    settings = RuntimeSettings(
        nats_url=nats_server.url,
        nats_user="rooms",
        nats_password=nats_auth.user_password(root, "rooms"),
        nats_inbox_prefix=nats_auth.inbox_prefix("rooms"),
    )
    broker = make_broker(settings, "test-broker")
    connection = await broker.connect()
    try:
        assert connection.is_connected
    finally:
        await broker.stop()


def test_generated_passwords_pass_through_nats_variable_references(tmp_path: Path) -> None:
    """Compose and Kubernetes give nats-server its passwords as `$VARIABLE`s, which it
    parses as configuration values: a leading `-` once kept NATS from starting in CI."""
    import os
    import subprocess

    from services.runtime.natsserver import nats_server_binary

    refs = {user: f"NATS_PASSWORD_{user.upper()}" for user in nats_auth.USERS}
    config = tmp_path / "nats.conf"
    config.write_text(nats_auth.authorization_block(refs, references=True))

    def check(passwords: dict[str, str]) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **{refs[user]: value for user, value in passwords.items()}}
        return subprocess.run(
            [nats_server_binary(), "-c", str(config), "-t"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )

    for _ in range(20):
        generated = {user: nats_auth.new_password() for user in nats_auth.USERS}
        result = check(generated)
        assert result.returncode == 0, (generated, result.stderr)
    # What the generator avoids: nats-server refuses these.
    for bad in ("-b4Xq", "12", "1kb"):
        assert check({**generated, "gateway": bad}).returncode != 0, bad
