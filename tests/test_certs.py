"""Test certificates made at run time (loadtests.certs): a real TLS handshake on loopback
verifies against the written CA, and the negative variants fail with readable causes."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from loadtests.certs import make_test_pki


def _handshake(cert: Path, key: Path, ca: Path, server_name: str) -> None:
    """Serve one TLS handshake on 127.0.0.1 with `cert`, connect verifying against `ca`."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client_ctx = ssl.create_default_context(cafile=str(ca))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                client_ctx.wrap_socket(raw, server_hostname=server_name) as tls:
            tls.sendall(b"x")
    finally:
        thread.join(5)
        listener.close()


def test_server_certificate_verifies_against_the_written_ca(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path)
    assert pki.key_file.stat().st_mode & 0o077 == 0
    _handshake(pki.cert_file, pki.key_file, pki.ca_file, "mail.example.test")


def test_wrong_name_expired_and_untrusted_fail_verification(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "ok")
    with pytest.raises(ssl.SSLCertVerificationError, match=r"Hostname mismatch|match"):
        _handshake(pki.cert_file, pki.key_file, pki.ca_file, "other.example.org")
    old = make_test_pki(tmp_path / "old", expired=True)
    with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
        _handshake(old.cert_file, old.key_file, old.ca_file, "localhost")
    stranger = make_test_pki(tmp_path / "stranger")
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        _handshake(stranger.cert_file, stranger.key_file, pki.ca_file, "localhost")
