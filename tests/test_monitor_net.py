"""TCP state counting on real loopback sockets (netlink sock_diag and the /proc fallback agree),
and the pure parsers on made-up /proc text and netlink records."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from loadtests.monitor import net, sockdiag
from loadtests.monitor.net import (
    TcpCounts,
    count_tcp,
    local_port_range,
    tcp_counts_from_diag,
    tcp_counts_from_tables,
)
from loadtests.monitor.procfs import parse_limit, parse_meminfo, parse_netstat, parse_stat

TABLE = (b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
         b"timeout inode\n"
         b"   0: 0100007F:278F 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0   "
         b"     0 111 1 0 100 0 0 10 0\n"
         b"   1: 0100007F:278F 0100007F:8001 01 00000000:00000000 00:00000000 00000000     0   "
         b"     0 112 1 0 20 4 30 10 -1\n"
         b"   2: 0100007F:8001 0100007F:278F 01 00000000:00000000 00:00000000 00000000     0   "
         b"     0 113 1 0 20 4 30 10 -1\n"
         b"10000: 0100007F:8002 0100007F:278F 06 00000000:00000000 03:00001770 00000000     0"
         b"        0 0 3\n"
         b"   4: 0100007F:1F90 0100007F:0050 08 00000000:00000000 00:00000000 00000000     0   "
         b"     0 114 1\n")


def test_counts_from_a_made_up_table() -> None:
    c = tcp_counts_from_tables([TABLE], ports=[0x278F], ephemeral=(32768, 60999))
    assert c.local[0x278F] == {"LISTEN": 1, "ESTABLISHED": 1}
    assert c.remote[0x278F] == {"ESTABLISHED": 1, "TIME_WAIT": 1}
    assert c.listen_queue == {0x278F: 3}
    assert (c.ephemeral_in_use, c.ephemeral_max_per_destination) == (2, 2)
    assert c.states == {"LISTEN": 1, "ESTABLISHED": 2, "TIME_WAIT": 1, "CLOSE_WAIT": 1}
    d = c.as_dict()
    assert d["local"] == {"LISTEN": 1, "ESTABLISHED": 1}
    assert d["ports"]["10127"]["listen_queue"] == 3


def test_parsing_20k_sockets_is_fast() -> None:
    row = (b"%5d: 0100007F:%04X 0100007F:278F 01 00000000:00000000 00:00000000 00000000  0  "
           b"      0 %d 1 0 20 4 30 10 -1\n")
    table = TABLE.split(b"\n", 1)[0] + b"\n" + b"".join(row % (i, 32768 + i % 28000, i)
                                                         for i in range(20_000))
    t0 = time.process_time()
    c = tcp_counts_from_tables([table], [0x278F], (32768, 60999))
    spent = time.process_time() - t0
    assert c.remote[0x278F]["ESTABLISHED"] == 20_000 and c.ephemeral_in_use == 20_000
    assert spent < 1.0  # ~30 ms on an idle core; generous for a shared machine


def _established_pairs(n: int) -> tuple[socket.socket, list[socket.socket], list[socket.socket]]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    clients = [socket.create_connection(srv.getsockname()) for _ in range(n)]
    servers = [srv.accept()[0] for _ in range(n)]
    return srv, clients, servers


def test_established_then_time_wait_on_real_sockets() -> None:
    srv, clients, servers = _established_pairs(5)
    port = srv.getsockname()[1]
    try:
        c = count_tcp([port], local_port_range())
        assert c.local[port]["ESTABLISHED"] == 5 and c.local[port]["LISTEN"] == 1
        assert c.remote[port]["ESTABLISHED"] == 5
        assert c.ephemeral_in_use == 5 and c.ephemeral_max_per_destination == 5
        for s in clients:  # the client closes first, so the client side ends in TIME_WAIT
            s.close()
        for s in servers:
            s.close()
        deadline = time.monotonic() + 5
        while count_tcp([port]).remote[port]["TIME_WAIT"] < 5:
            assert time.monotonic() < deadline, count_tcp([port]).remote[port]
            time.sleep(0.02)
        c = count_tcp([port], local_port_range())
        assert c.remote[port]["TIME_WAIT"] == 5 and c.local[port].get("ESTABLISHED", 0) == 0
        assert c.ephemeral_in_use == 5  # a port in TIME_WAIT is still taken
    finally:
        srv.close()
        for s in clients + servers:
            s.close()


def test_listen_queue_counts_unaccepted_connections() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        assert count_tcp([port]).listen_queue[port] == 3
    finally:
        for s in [*clients, srv]:
            s.close()


def test_proc_parsers() -> None:
    st = parse_stat(7, b"7 (a (b) c) S 1 7 7 0 -1 4194560 10 0 0 0 150 50 5 5 20 0 3 0 "
                       b"12345 1000 250 18446744073709551615")
    assert (st.comm, st.state, st.ppid, st.threads, st.starttime, st.rss_pages) == \
           ("a (b) c", "S", 1, 3, 12345, 250)
    assert st.cpu_ticks == 210 and not st.zombie
    limits = ("Limit                     Soft Limit           Hard Limit           Units\n"
              "Max processes             unlimited            unlimited            processes\n"
              "Max open files            1024                 4096                 files\n")
    assert parse_limit(limits) == (1024, 4096)
    assert parse_limit(limits, "Max processes") == (None, None)
    assert parse_meminfo("MemTotal:  2048 kB\nMemAvailable: 1024 kB\nHugePages_Total: 0\n") == \
           {"MemTotal": 2097152, "MemAvailable": 1048576, "HugePages_Total": 0}
    netstat = ("TcpExt: SyncookiesSent ListenOverflows ListenDrops\n"
               "TcpExt: 0 12 14\nIpExt: InOctets\nIpExt: 99\n")
    assert parse_netstat(netstat) == {"TcpExt": {"SyncookiesSent": 0, "ListenOverflows": 12,
                                                 "ListenDrops": 14}, "IpExt": {"InOctets": 99}}


# -- netlink sock_diag ---------------------------------------------------------------------------

def _port_view(c: TcpCounts, port: int) -> tuple[object, ...]:
    """What count_tcp says about one port (the host-wide totals move with other tests' sockets)."""
    return (dict(c.local[port]), dict(c.remote[port]), c.listen_queue.get(port))


def _both_sources(ports: list[int]) -> tuple[TcpCounts, TcpCounts]:
    eph = local_port_range()
    return count_tcp(ports, eph, source="netlink"), count_tcp(ports, eph, source="proc")


@pytest.fixture(params=["one walk", "per family"])
def diag_request(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the TCPDIAG_GETSOCK request (both families) and with one
    SOCK_DIAG_BY_FAMILY request per family."""
    monkeypatch.setattr(sockdiag, "_one_walk", request.param == "one walk")
    return str(request.param)


def test_netlink_equals_proc_for_established_and_time_wait(diag_request: str) -> None:
    srv, clients, servers = _established_pairs(4)
    port = srv.getsockname()[1]
    srv6 = socket.socket(socket.AF_INET6)
    srv6.bind(("::1", 0))
    srv6.listen(8)
    port6 = srv6.getsockname()[1]
    clients6 = [socket.create_connection(("::1", port6)) for _ in range(3)]
    try:
        nl, proc = _both_sources([port, port6])
        assert nl.local[port]["ESTABLISHED"] == 4 and nl.local[port]["LISTEN"] == 1
        assert nl.remote[port6]["ESTABLISHED"] == 3 and nl.listen_queue[port6] == 3
        for p in (port, port6):
            assert _port_view(nl, p) == _port_view(proc, p)
        assert (nl.ephemeral_in_use, nl.ephemeral_max_per_destination) == \
               (proc.ephemeral_in_use, proc.ephemeral_max_per_destination) == (7, 4)
        for s in clients:  # the client closes first: its side ends in TIME_WAIT
            s.close()
        for s in servers:
            s.close()
        deadline = time.monotonic() + 5
        while count_tcp([port], source="netlink").remote[port]["TIME_WAIT"] < 4:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        nl, proc = _both_sources([port, port6])
        assert nl.remote[port]["TIME_WAIT"] == 4 and nl.local[port].get("ESTABLISHED", 0) == 0
        for p in (port, port6):
            assert _port_view(nl, p) == _port_view(proc, p)
        assert nl.ephemeral_in_use == proc.ephemeral_in_use == 7
        assert nl.states["TIME_WAIT"] >= 4 and nl.states["LISTEN"] >= 2
    finally:
        for s in [srv, srv6, *clients, *servers, *clients6]:
            s.close()


def test_netlink_counts_made_up_records() -> None:
    def record(kind: int, family: int, state: int, sport: int, dport: int, dst: bytes,
               rqueue: int = 0, attrs: bytes = b"") -> bytes:
        body = struct.pack("=BBBB", family, state, 0, 0) + struct.pack(">HH", sport, dport)
        body += bytes(16) + dst.ljust(16, b"\0") + bytes(12)  # src, dst, if, cookie
        body += struct.pack("=IIIII", 0, rqueue, 0, 0, 0) + attrs
        return struct.pack("=IHHII", 16 + len(body), kind, 2, 1, 0) + body

    lo = bytes([127, 0, 0, 1])
    shutdown_attr = struct.pack("=HHB3x", 5, 8, 0)  # INET_DIAG_SHUTDOWN, padded to 8
    first = (record(18, socket.AF_INET, 10, 10127, 0, b"", rqueue=3, attrs=shutdown_attr)
             + record(18, socket.AF_INET, 1, 10127, 40000, lo, attrs=shutdown_attr)
             + record(18, socket.AF_INET, 1, 40000, 10127, lo, attrs=shutdown_attr))
    second = (record(20, socket.AF_INET6, 6, 40001, 10127, bytes(15) + b"\1")
              + record(20, socket.AF_INET, 8, 8080, 80, lo)
              + struct.pack("=IHHIIi", 20, sockdiag.NLMSG_DONE, 2, 1, 0, 0)
              + record(20, socket.AF_INET, 1, 1, 2, lo))  # after DONE: not counted
    c = tcp_counts_from_diag([first, second], ports=[10127], ephemeral=(32768, 60999))
    assert c.local[10127] == {"LISTEN": 1, "ESTABLISHED": 1}
    assert c.remote[10127] == {"ESTABLISHED": 1, "TIME_WAIT": 1}
    assert c.listen_queue == {10127: 3}
    assert (c.ephemeral_in_use, c.ephemeral_max_per_destination) == (2, 1)  # v4 and v6 peer
    assert c.states == {"LISTEN": 1, "ESTABLISHED": 2, "TIME_WAIT": 1, "CLOSE_WAIT": 1}
    done = struct.pack("=IHHIIi", 20, sockdiag.NLMSG_DONE, 2, 1, 0, 0)
    assert sockdiag._ends_with_done(second[:-len(record(20, 2, 1, 1, 2, lo))])
    assert sockdiag._ends_with_done(done) and not sockdiag._ends_with_done(first)


def test_count_tcp_falls_back_to_proc_when_netlink_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(ports: object = None) -> list[bytes]:
        raise PermissionError(1, "netlink refused")

    monkeypatch.setattr(sockdiag, "dump_tcp", refuse)
    monkeypatch.setattr(net, "_netlink_ok", True)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    try:
        assert count_tcp([port]).local[port] == {"LISTEN": 1}  # from /proc/net/tcp
        assert net._netlink_ok is False  # not tried again
        with pytest.raises(PermissionError):
            count_tcp([port], source="netlink")
    finally:
        srv.close()


# -- the kernel-side port filter -------------------------------------------------------------------

def _ports_of(chunks: list[bytes]) -> list[tuple[int, int]]:
    """(local port, remote port) of every socket record in sock_diag reply datagrams."""
    out = []
    for chunk in chunks:
        off = 0
        while off + sockdiag.HEAD <= len(chunk):
            length, kind = sockdiag.HEADER.unpack_from(chunk, off)
            if kind in sockdiag.RECORD_TYPES and length >= sockdiag.MIN_LEN:
                out.append(struct.unpack_from(">HH", chunk, off + sockdiag.AT_SPORT))
            off += (length + 3) & ~3
    return out


def test_port_ranges_merge_consecutive_ports() -> None:
    assert sockdiag.port_ranges([25, 10143, 24, 10144, 26, 80, 10143]) == \
        [(24, 26), (80, 80), (10143, 10144)]
    assert sockdiag.port_filter([]) == b""
    assert len(sockdiag.port_filter([25])) == 2 * 16 + 4  # (local, remote) x (>=, <=), a jump


def test_the_kernel_sends_only_the_sockets_on_the_filtered_ports(diag_request: str) -> None:
    a, a_clients, a_servers = _established_pairs(3)
    b, b_clients, b_servers = _established_pairs(2)
    port_a, port_b = a.getsockname()[1], b.getsockname()[1]
    try:
        everything = _ports_of(sockdiag.dump_tcp())
        assert sum(port_b in pair for pair in everything) == 5  # the unfiltered dump has b's
        only_a = _ports_of(sockdiag.dump_tcp([port_a]))
        assert only_a and all(port_a in pair for pair in only_a), only_a
        assert sum(pair[0] == port_a for pair in only_a) == 4  # listener + 3 accepted
        assert sum(pair[1] == port_a for pair in only_a) == 3  # the clients
        both = _ports_of(sockdiag.dump_tcp([port_a, port_b, port_b + 1, 1]))  # 3+ runs
        assert sum(port_a in pair for pair in both) == 7
        assert sum(port_b in pair for pair in both) == 5
        assert sockdiag._filters  # the kernel took every filter
    finally:
        for s in [a, b, *a_clients, *a_servers, *b_clients, *b_servers]:
            s.close()


def test_states_count_the_ports_sockets_unless_host_states_is_asked() -> None:
    srv, clients, servers = _established_pairs(3)
    other, o_clients, o_servers = _established_pairs(2)
    port = srv.getsockname()[1]
    try:
        for source in ("netlink", "proc"):
            ours = count_tcp([port], source=source)
            assert ours.states == {"LISTEN": 1, "ESTABLISHED": 6}, source
            host = count_tcp([port], source=source, host_states=True)
            assert host.states["ESTABLISHED"] >= 10 and host.states["LISTEN"] >= 2, source
            assert _port_view(host, port) == _port_view(ours, port), source
        assert count_tcp([]).states == {}  # no port of interest: nothing asked of the kernel
    finally:
        for s in [srv, other, *clients, *servers, *o_clients, *o_servers]:
            s.close()


def test_a_filter_the_kernel_refuses_falls_back_to_the_whole_dump(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sockdiag, "_filters", True)
    monkeypatch.setattr(sockdiag, "port_filter", lambda ports: bytes([0xFF, 4, 4, 0]))  # no op
    srv, clients, servers = _established_pairs(2)
    port = srv.getsockname()[1]
    try:
        c = count_tcp([port], source="netlink")
        assert c.local[port] == {"LISTEN": 1, "ESTABLISHED": 2}
        assert c.states == {"LISTEN": 1, "ESTABLISHED": 4}  # the others skipped in Python
        assert sockdiag._filters is False  # not sent again
    finally:
        for s in [srv, *clients, *servers]:
            s.close()
