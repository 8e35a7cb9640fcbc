"""TCP state counting on real loopback sockets, and the pure /proc parsers on made-up text."""

from __future__ import annotations

import socket
import time

from loadtests.monitor.net import count_tcp, local_port_range, tcp_counts_from_tables
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
