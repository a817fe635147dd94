"""Fixtures of real Redis topologies: a Redis Cluster of three masters (`redis_cluster`) and
a master, its replica and a sentinel (`redis_sentinel`), as gobarber.testing builds them.

Registered in tests/conftest.py as a plugin. Both need the redis-server binary (the cluster
redis-cli too): without it the tests that ask for them are skipped, or fail when the
environment variable CI is set, so that a CI image missing it cannot pass silently.

`tls_certificates` is a test CA and a certificate for 127.0.0.1 it signed, for the `tls=`
of those servers; a redis-server built without TLS skips the tests that ask for it (fails
them under CI).
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gobarber.testing import PrivateCluster, PrivateSentinel


def require(*binaries):
    """Skip (fail under CI) when one of `binaries` is not on PATH."""
    missing = [binary for binary in binaries if shutil.which(binary) is None]
    if not missing:
        return
    reason = f"needs {' and '.join(missing)} on PATH"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is not skipped)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def cluster_processes(tmp_path_factory):
    """The module's cluster, started by the first test that asks for `redis_cluster`
    (a cluster takes about 2 s to start: redis-cli waits, and a master serves no slot
    during its first 2 s). A list holding it, or nothing once a test broke it."""
    require("redis-server", "redis-cli")
    held = []
    yield held
    for cluster in held:
        cluster.stop()


@pytest.fixture
def redis_cluster(cluster_processes, tmp_path_factory):
    """A Redis Cluster of three masters on 127.0.0.1 with no key in it (PrivateCluster).

    The processes are shared by the tests of a module: every test starts with no key and
    no open migration, but a slot a test moved stays where it went, so ask `owner()` or
    `masters_of()` rather than assume the layout. A test that leaves the cluster unable to
    serve every slot gets it replaced by a fresh one for the next test.
    """
    if not cluster_processes:
        cluster = PrivateCluster(tmp_path_factory.mktemp("cluster"))
        cluster.start()
        cluster_processes.append(cluster)
    cluster = cluster_processes[0]
    yield cluster
    try:
        cluster.reset()
    except Exception:
        cluster.stop()
        cluster_processes.clear()


@pytest.fixture
def redis_sentinel(tmp_path):
    """A master, its replica and one sentinel on 127.0.0.1 (PrivateSentinel), this test's
    own: starting them takes a fraction of a second, and `failover()` changes who is master."""
    require("redis-server")
    sentinel = PrivateSentinel(tmp_path / "sentinel")
    sentinel.start()
    yield sentinel
    sentinel.stop()


def redis_server_has_tls():
    """Tell whether redis-server knows the tls-* directives, i.e. was built with TLS."""
    # It stops at the first directive it does not know: built with TLS, the made-up one.
    checked = subprocess.run(
        ["redis-server", "--tls-port", "0", "--no-such-directive", "x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return "no-such-directive" in checked.stdout + checked.stderr


def make_certificates(directory):
    """Write a CA (`ca.crt`, `ca.key`) and a certificate for the IP address 127.0.0.1
    signed by it (`server.crt`, `server.key`) into `directory`, with openssl; return it."""
    directory = Path(directory)
    extensions = directory / "server.ext"
    extensions.write_text(
        "subjectAltName = IP:127.0.0.1\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth, clientAuth\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid, issuer\n"
    )
    commands = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=GoBarber test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key"]
        + ["-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key"]
        + ["-CAcreateserial", "-days", "2", "-out", "server.crt", "-extfile", "server.ext"],
    ]
    for arguments in commands:
        done = subprocess.run(
            ["openssl", *arguments], cwd=directory, capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise AssertionError(f"openssl {' '.join(arguments)} failed:\n{done.stderr}")
    return directory


@pytest.fixture(scope="session")
def tls_certificates(tmp_path_factory):
    """A directory holding a test CA and a certificate for 127.0.0.1 it signed (the `tls=`
    of gobarber.testing's private servers). Skipped only when redis-server has no TLS, and
    never under CI; without openssl to make the certificates it fails."""
    require("redis-server")
    if not redis_server_has_tls():
        reason = "redis-server was built without TLS (it does not know tls-port)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so this is not skipped)")
        pytest.skip(reason)
    if shutil.which("openssl") is None:
        pytest.fail("the TLS tests make their certificates with openssl, which is not on PATH")
    return make_certificates(tmp_path_factory.mktemp("tls"))
