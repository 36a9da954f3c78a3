"""Azurite, the Azure Storage emulator, for tests and benchmarks.

``start_azurite()`` finds (or npm-installs) ``azurite-blob`` in a cache directory outside
the repository (``$EXECSTORE_CACHE_DIR/azurite`` or ``~/.cache/execstore/azurite``), starts
it on a free port with a throw-away data directory and waits until it answers. The
``azurite`` session fixture wraps that. If Azurite cannot start, the fixture *fails*: a
missing emulator must never turn the Azure tests into silent skips.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["AzuriteServer", "azurite", "azurite_binary", "start_azurite"]

# Azurite's fixed development account; the key is public (documented by Microsoft).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
INSTALL_TIMEOUT_SECONDS = 300
STARTUP_TIMEOUT_SECONDS = 30.0


def cache_dir() -> Path:
    """Where azurite is installed: outside the repo so a clean checkout stays clean."""
    base = os.environ.get("EXECSTORE_CACHE_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "execstore"
    return root / "azurite"


def azurite_binary(directory: Path | None = None) -> Path:
    """The path of ``azurite-blob``, installing azurite@3 with npm first if needed."""
    directory = directory or cache_dir()
    binary = directory / "node_modules" / ".bin" / "azurite-blob"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("azurite-blob is not installed and npm is not on PATH")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(directory), "azurite@3"],
            check=True,
            capture_output=True,
            timeout=INSTALL_TIMEOUT_SECONDS,
        )
    except subprocess.CalledProcessError as exc:
        tail = exc.stderr.decode(errors="replace")[-2000:]
        raise RuntimeError(f"npm install azurite@3 failed:\n{tail}") from exc
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"npm install azurite@3 took over {INSTALL_TIMEOUT_SECONDS}s") from exc
    if not binary.exists():
        raise RuntimeError(f"npm install finished but {binary} does not exist")
    return binary


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class AzuriteServer:
    """A running Azurite blob service."""

    port: int
    process: subprocess.Popen[bytes]
    location: Path
    log_path: Path
    _owns_location: bool = field(default=True, repr=False)

    @property
    def blob_endpoint(self) -> str:
        """The account's blob endpoint URL."""
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        """A connection string for the development account on this server."""
        return connection_string(self.blob_endpoint)

    def new_container_name(self, prefix: str = "test") -> str:
        """A fresh, valid container name, unique per call."""
        return f"{prefix}-{uuid.uuid4().hex[:24]}"

    def log_tail(self, limit: int = 4000) -> str:
        """The end of Azurite's output (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """Terminate Azurite and remove its data."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._owns_location:
            shutil.rmtree(self.location, ignore_errors=True)


def connection_string(blob_endpoint: str) -> str:
    """A development-account connection string for ``blob_endpoint``."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={blob_endpoint};"
    )


def start_azurite(*, timeout: float = STARTUP_TIMEOUT_SECONDS) -> AzuriteServer:
    """A started Azurite on a free port; raises RuntimeError (with its log) if it won't run."""
    binary = azurite_binary()
    location = Path(tempfile.mkdtemp(prefix="execstore-azurite-"))
    log_path = location / "azurite.log"
    port = free_port()
    command = [
        str(binary),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--skipApiVersionCheck",
        "--loose",
        "--disableTelemetry",
        "--silent",
        "--location",
        str(location / "data"),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = AzuriteServer(port=port, process=process, location=location, log_path=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            server.stop()
            raise RuntimeError(
                f"azurite exited with {process.returncode} before listening:\n{server.log_tail()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.1)
    tail = server.log_tail()
    server.stop()
    raise RuntimeError(f"azurite did not listen on port {port} within {timeout}s:\n{tail}")


# -- the fixture, and the rule that the ``azurite`` marker means "talks to Azurite" ----
#
# ``-m azurite`` / ``-m "not azurite"`` must select exactly the tests that need the
# emulator. So a test that gets the ``azurite`` fixture (directly, through another
# fixture, or with request.getfixturevalue) must carry the marker, and a test carrying
# the marker must get the fixture. Checked at collection where the fixture closure
# shows it, and at run time for fixtures fetched dynamically (the blob_backend param).

_USED_AZURITE = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def _azurite_session() -> Iterator[AzuriteServer]:
    server = start_azurite()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def azurite(_azurite_session: AzuriteServer, request: pytest.FixtureRequest) -> AzuriteServer:
    """The session-wide Azurite; use ``azurite.new_container_name()`` per test.

    Only for tests marked ``@pytest.mark.azurite`` (anything else fails here).
    """
    if request.node.get_closest_marker("azurite") is None:
        pytest.fail(
            f"{request.node.nodeid} uses Azurite but is not marked @pytest.mark.azurite",
            pytrace=False,
        )
    request.node.stash[_USED_AZURITE] = True
    return _azurite_session


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse a run where a test's fixtures include ``azurite`` but it lacks the marker."""
    unmarked = [
        item.nodeid
        for item in items
        if "azurite" in getattr(item, "fixturenames", ())
        and item.get_closest_marker("azurite") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "these tests use the azurite fixture without @pytest.mark.azurite:\n  "
            + "\n  ".join(unmarked)
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail a passing test marked ``azurite`` that never got the azurite fixture."""
    result = yield
    if item.get_closest_marker("azurite") and not item.stash.get(_USED_AZURITE, False):
        pytest.fail(
            f"{item.nodeid} is marked @pytest.mark.azurite but never uses Azurite: "
            "drop the marker (or use the azurite fixture)",
            pytrace=False,
        )
    return result
