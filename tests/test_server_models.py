"""The embedded target's server models (the seeds' limits, on purpose): a connection cap that
refuses with the protocol's own words, a thread-per-connection limit that leaves clients waiting
in the listen queue, and an open-files limit."""

import socket
import time

import pytest


def greet(port: int, timeout: float = 1.0) -> bytes | None:
    """The server's first line, or None when it says nothing in time (connection kept open),
    or b"" when the connection was reset or closed without a word."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return s.recv(200)
    except TimeoutError:
        return None
    except ConnectionResetError:
        return b""
    finally:
        _open.append(s)


_open: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_sockets():
    yield
    while _open:
        _open.pop().close()


def test_connection_cap_refuses_in_protocol_words(start_target):
    target = start_target(max_connections=3)
    pop3, imap = target.ready["pop3_port"], target.ready["imap_port"]
    assert all(greet(pop3).startswith(b"+OK") for _ in range(3))
    assert greet(pop3).startswith(b"-ERR [SYS/TEMP] too many connections")
    assert all(greet(imap).startswith(b"* OK") for _ in range(3))
    assert greet(imap) == b"* BYE Connection queue full\r\n"
    time.sleep(1.2)
    assert target.stats().listeners["pop3"]["refused"] == 1


def test_thread_limit_leaves_clients_waiting(start_target):
    target = start_target(mode="thread", thread_limit=4)
    port = target.ready["pop3_port"]
    assert all(greet(port).startswith(b"+OK") for _ in range(4))
    assert greet(port) is None  # accepted by the kernel, never served: no thread for it
    _open.pop(0).close()  # one client leaves: its thread ends, the waiting one is served
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if target.stats() and target.stats().listeners["pop3"]["accepted"] == 5:
            break
    assert target.stats().listeners["pop3"]["peak"] == 4


def test_open_files_limit_stops_new_sessions(start_target):
    target = start_target(nofile_limit=64)
    port = target.ready["imap_port"]
    answers = [greet(port, timeout=0.5) for _ in range(80)]
    served = [a for a in answers if a and a.startswith(b"* OK")]
    assert 30 <= len(served) < 64  # the process's own files and sockets use part of the 64
    assert not answers[-1]  # beyond the limit: no greeting (left waiting, or cut off)


def test_thread_mode_serves_connections_past_descriptor_1023(start_target):
    # a connection's own event loop must not use select(): it refuses a descriptor >= 1024
    target = start_target(mode="thread", thread_limit=1300, nofile_limit=4000)
    port = target.ready["pop3_port"]
    answers = [greet(port, timeout=5) for _ in range(1150)]
    assert all(a and a.startswith(b"+OK") for a in answers), \
        [(i, a) for i, a in enumerate(answers) if not (a and a.startswith(b"+OK"))][:3]
    last = _open[-1]
    last.sendall(b"QUIT\r\n")
    assert last.recv(200).startswith(b"+OK")
