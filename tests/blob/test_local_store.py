"""What only the local directory store promises: plain files, atomic commits, no leftovers."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from execstore.blob import InvalidBlobKey, LocalBlobStore
from execstore.errors import ArchiveConflict, BlobStoreError


async def test_blob_is_a_plain_file_and_metadata_a_hidden_sidecar(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    await store.put("a/b.bin", b"payload", metadata={"k": "v"})
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"payload"
    sidecar = json.loads((tmp_path / "a" / ".b.bin.meta.json").read_text())
    assert sidecar["metadata"] == {"k": "v", "sha256": hashlib.sha256(b"payload").hexdigest()}
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [".b.bin.meta.json", "b.bin"]
    assert [info.key async for info in store.list()] == ["a/b.bin"]


async def test_concurrent_streamed_writers_leave_one_file_and_no_temp_files(
    tmp_path: Path,
) -> None:
    store = LocalBlobStore(tmp_path)

    async def stream(tag: int) -> object:
        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(50):
                await asyncio.sleep(0)
                yield f"{tag}".encode() * 1000

        return await store.put("race/x", chunks())

    outcomes = await asyncio.gather(*(stream(i) for i in range(6)), return_exceptions=True)
    assert sum(not isinstance(o, Exception) for o in outcomes) == 1
    assert all(isinstance(o, ArchiveConflict) for o in outcomes if isinstance(o, Exception))
    assert sorted(p.name for p in (tmp_path / "race").iterdir()) == [".x.meta.json", "x"]


async def test_a_missing_sidecar_is_repaired_by_an_identical_reput(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    await store.put("k", b"data", metadata={"m": "1"})
    (tmp_path / ".k.meta.json").unlink()  # the first writer died after link, before sidecar
    [info] = [info async for info in store.list()]
    assert info.metadata == {}
    assert not (await store.put("k", b"data", metadata={"m": "1"})).created
    [info] = [info async for info in store.list()]
    assert info.metadata["m"] == "1"


async def test_listing_prefix_cannot_escape_the_root(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "root")
    (tmp_path / "secret").write_text("x")
    with pytest.raises(InvalidBlobKey):
        _ = [info async for info in store.list("../")]
    with pytest.raises(InvalidBlobKey):
        _ = [info async for info in store.list("/etc/")]


async def test_repr_names_the_root(tmp_path: Path) -> None:
    assert repr(LocalBlobStore(tmp_path)) == f"LocalBlobStore(root={str(tmp_path)!r})"


# -- symbolic links: nothing outside the root is read, written or removed ---------------


def snapshot(directory: Path) -> dict[str, bytes | str]:
    """Every entry below ``directory``: a file's bytes, or what else it is."""
    return {
        p.relative_to(directory).as_posix(): (
            "link" if p.is_symlink() else p.read_bytes() if p.is_file() else "directory"
        )
        for p in sorted(directory.rglob("*"))
    }


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the store's root holding files the store must never touch."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret").write_bytes(b"not yours")
    (directory / "victim").write_bytes(b"keep me")
    return directory


@pytest.fixture
def planted(tmp_path: Path, outside: Path) -> LocalBlobStore:
    """A store whose root has links to ``outside``: at the top, one level down, a file."""
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "dir").mkdir()
    (root / "evil").symlink_to(outside, target_is_directory=True)
    (root / "a" / "evil").symlink_to(outside, target_is_directory=True)
    (root / "dir" / "secret").symlink_to(outside / "secret")
    (root / "dir" / "victim").symlink_to(outside / "victim")
    return LocalBlobStore(root)


# Keys that reach outside the root through a symlinked directory (at the top, deeper)
# or through the file itself being a link.
LINKED_KEYS = ["evil/secret", "a/evil/secret", "dir/secret", "dir/victim"]


async def _refused(call: object, key: str) -> None:
    with pytest.raises(BlobStoreError) as caught:
        await call  # type: ignore[misc]
    assert key in str(caught.value)
    assert "symbolic link" in str(caught.value)


@pytest.mark.parametrize("key", [*LINKED_KEYS, "evil/new", "a/evil/deeper/new"])
async def test_put_refuses_a_link_on_the_way(
    planted: LocalBlobStore, outside: Path, key: str
) -> None:
    before = snapshot(outside)
    await _refused(planted.put(key, b"not yours"), key)  # the very bytes of "secret"
    await _refused(planted.put(key, b"x" * 10), key)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"streamed"

    await _refused(planted.put(key, chunks()), key)
    assert snapshot(outside) == before == {"secret": b"not yours", "victim": b"keep me"}


@pytest.mark.parametrize("key", LINKED_KEYS)
async def test_reads_refuse_a_link_on_the_way(planted: LocalBlobStore, key: str) -> None:
    await _refused(planted.get(key), key)
    await _refused(_drain(planted.stream(key)), key)
    await _refused(planted.exists(key), key)


@pytest.mark.parametrize("key", LINKED_KEYS)
async def test_delete_refuses_a_link_on_the_way(
    planted: LocalBlobStore, outside: Path, key: str
) -> None:
    before = snapshot(outside)
    await _refused(planted.delete(key), key)
    assert snapshot(outside) == before
    assert (planted.root / key).is_symlink() or (planted.root / key).parent.is_symlink()


async def test_listing_refuses_a_linked_prefix_and_skips_links_below(
    planted: LocalBlobStore,
) -> None:
    await planted.put("dir/real", b"mine")
    await planted.put("a/real", b"mine too")
    for prefix in ("evil/", "evil/sec", "a/evil/", "a/evil/x/"):
        await _refused(_drain(planted.list(prefix)), prefix)
    # Below a prefix, links are neither followed nor reported as blobs.
    assert [info.key async for info in planted.list()] == ["a/real", "dir/real"]
    assert [info.key async for info in planted.list("dir/")] == ["dir/real"]
    assert [info.key async for info in planted.list("e")] == []


async def test_a_linked_sidecar_is_replaced_not_written_through(
    planted: LocalBlobStore, outside: Path
) -> None:
    before = snapshot(outside)
    (planted.root / "dir" / ".mine.meta.json").symlink_to(outside / "victim")
    await planted.put("dir/mine", b"payload", metadata={"k": "v"})
    assert snapshot(outside) == before
    [info] = [info async for info in planted.list("dir/mine")]
    assert info.metadata["k"] == "v"


async def test_the_root_itself_may_be_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real-root"
    real.mkdir()
    (tmp_path / "configured").symlink_to(real, target_is_directory=True)
    store = LocalBlobStore(tmp_path / "configured")
    await store.put("a/b", b"payload")
    assert (real / "a" / "b").read_bytes() == b"payload"
    assert await store.get("a/b") == b"payload"
    assert [info.key async for info in store.list()] == ["a/b"]


async def _drain(iterator: AsyncIterator[object]) -> list[object]:
    return [item async for item in iterator]


# -- a put that cannot write its sidecar takes its blob back ----------------------------


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1000):
        yield data[start : start + 1000]


@pytest.mark.parametrize("streamed", [False, True], ids=["bytes", "stream"])
async def test_a_failed_sidecar_write_leaves_no_blob_and_a_reput_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, streamed: bool
) -> None:
    store = LocalBlobStore(tmp_path)
    data = b"whole blob " * 500

    def no_room(*_args: object) -> None:
        raise OSError(errno.ENAMETOOLONG, "File name too long")

    with monkeypatch.context() as patched:
        patched.setattr(LocalBlobStore, "_write_sidecar", no_room)
        with pytest.raises(BlobStoreError, match="dir/k"):
            await store.put("dir/k", _chunks(data) if streamed else data, metadata={"m": "1"})
    assert not await store.exists("dir/k")
    assert os.listdir(tmp_path / "dir") == []  # no blob, no sidecar, no temporary file

    result = await store.put("dir/k", _chunks(data) if streamed else data, metadata={"m": "1"})
    assert result.created
    assert await store.get("dir/k") == data
    [info] = [info async for info in store.list()]
    assert info.metadata == {"m": "1", "sha256": hashlib.sha256(data).hexdigest()}


async def test_the_rollback_removes_only_the_blob_this_put_linked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalBlobStore(tmp_path)

    def replaced_then_fail(self: LocalBlobStore, directory: int, name: str, *_: object) -> None:
        # Between our link and our sidecar, the key was deleted and written by another
        # writer: the name now holds a different file, which the rollback must keep.
        os.unlink(name, dir_fd=directory)
        (tmp_path / name).write_bytes(b"someone else's")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LocalBlobStore, "_write_sidecar", replaced_then_fail)
    with pytest.raises(BlobStoreError):
        await store.put("k", b"mine")
    assert (tmp_path / "k").read_bytes() == b"someone else's"


# -- sweep_partial: crash leftovers, and only those --------------------------------------

TEMP = "0123456789abcdef0123456789abcdef"  # the uuid4 hex a put names its temp files with


def plant(path: Path, data: bytes, *, age: timedelta) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    when = (datetime.now(UTC) - age).timestamp()
    os.utime(path, (when, when))
    return path


async def test_sweep_partial_removes_old_leftovers_only(tmp_path: Path, outside: Path) -> None:
    store = LocalBlobStore(tmp_path / "root")
    root = store.root
    await store.put("logs/a/live.ndjson.gz", b"live blob")
    old, young = timedelta(days=2), timedelta(minutes=5)
    old_ones = [
        plant(root / "logs/a" / f".killed.ndjson.gz.tmp-{TEMP}", b"half", age=old),
        plant(root / "logs/a" / f".live.ndjson.gz.meta.json.tmp-{TEMP}", b"{", age=old),
        plant(root / "logs/b" / ".deleted.ndjson.gz.meta.json", b"{}", age=old),
        plant(root / f".top.tmp-{TEMP}", b"half", age=old),
    ]
    kept = [
        plant(root / "logs/a" / f".running.ndjson.gz.tmp-{TEMP}", b"in progress", age=young),
        plant(root / "logs/b" / ".just-deleted.meta.json", b"{}", age=young),
        plant(root / "results" / f".other-prefix.tmp-{TEMP}", b"half", age=old),
        plant(root / "logs/a" / ".not-ours", b"someone else's", age=old),
        plant(root / "logs/a" / f".tmp-{TEMP}", b"no owner name", age=old),
    ]
    live_sidecar = root / "logs/a" / ".live.ndjson.gz.meta.json"
    os.utime(live_sidecar, (0, 0))  # as old as can be, but its blob is there
    (root / "logs/a" / f".link.tmp-{TEMP}").symlink_to(outside / "victim")
    os.utime(root / "logs/a" / f".link.tmp-{TEMP}", (0, 0), follow_symlinks=False)
    cutoff = datetime.now(UTC) - timedelta(hours=1)
    expected = sorted(p.relative_to(root).as_posix() for p in old_ones[:3])

    assert await store.sweep_partial("logs/", older_than=cutoff, dry_run=True) == expected
    assert all(p.exists() for p in old_ones)

    assert await store.sweep_partial("logs/", older_than=cutoff) == expected
    assert [p.exists() for p in old_ones] == [False, False, False, True]  # .top is not logs/
    assert all(p.exists() for p in [*kept, live_sidecar])
    assert (root / "logs/a" / f".link.tmp-{TEMP}").is_symlink()
    assert (outside / "victim").read_bytes() == b"keep me"
    assert await store.get("logs/a/live.ndjson.gz") == b"live blob"
    [info] = [info async for info in store.list()]
    assert info.metadata["sha256"] == hashlib.sha256(b"live blob").hexdigest()

    everywhere = [f".top.tmp-{TEMP}", f"results/.other-prefix.tmp-{TEMP}"]
    assert await store.sweep_partial("", older_than=cutoff) == everywhere
    assert await store.sweep_partial("", older_than=cutoff) == []
    assert all(p.exists() for p in kept[:2] + kept[3:])


async def test_sweep_partial_matches_the_key_a_leftover_belongs_to(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    temp = plant(tmp_path / "a" / f".blob-1.tmp-{TEMP}", b"half", age=timedelta(days=1))
    cutoff = datetime.now(UTC)
    assert await store.sweep_partial("a/c", older_than=cutoff) == []
    assert await store.sweep_partial("b", older_than=cutoff) == []
    assert await store.sweep_partial("a/blob-", older_than=cutoff.replace(tzinfo=None)) == [
        f"a/.blob-1.tmp-{TEMP}"
    ]
    assert not temp.exists()


async def test_sweep_partial_refuses_a_linked_prefix(
    planted: LocalBlobStore, outside: Path
) -> None:
    plant(outside / f".secret.tmp-{TEMP}", b"outside", age=timedelta(days=9))
    with pytest.raises(BlobStoreError, match="symbolic link"):
        await planted.sweep_partial("evil/", older_than=datetime.now(UTC))
    assert await planted.sweep_partial("", older_than=datetime.now(UTC)) == []
    assert (outside / f".secret.tmp-{TEMP}").exists()
    with pytest.raises(InvalidBlobKey):
        await planted.sweep_partial("../", older_than=datetime.now(UTC))


@pytest.mark.parametrize("key", ["../x", "a/../../x", "../outside/victim", "a/../b"])
async def test_delete_validates_the_key_and_removes_nothing(
    tmp_path: Path, outside: Path, key: str
) -> None:
    store = LocalBlobStore(tmp_path / "root")
    await store.put("a/b", b"inside")
    (tmp_path / "x").write_bytes(b"beside the root")
    before = snapshot(tmp_path)
    with pytest.raises(InvalidBlobKey):
        await store.delete(key)
    assert snapshot(tmp_path) == before
    assert await store.get("a/b") == b"inside"


async def test_a_sidecar_name_too_long_for_the_file_system_fails_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file system whose name limit fits the blob's temporary name but not the sidecar's
    # (eCryptfs allows 143 bytes): every call naming the sidecar's temp file fails.
    real_open, real_unlink = os.open, os.unlink

    def too_long(path: object) -> None:
        if ".meta.json" in str(path):
            raise OSError(errno.ENAMETOOLONG, "File name too long", path)

    def short_open(path: str, flags: int, mode: int = 0o777, **kw: Any) -> int:
        too_long(path)
        return real_open(path, flags, mode, **kw)

    def short_unlink(path: str, **kw: Any) -> None:
        too_long(path)
        real_unlink(path, **kw)

    store = LocalBlobStore(tmp_path)
    with monkeypatch.context() as patched:
        patched.setattr(os, "open", short_open)
        patched.setattr(os, "unlink", short_unlink)
        with pytest.raises(BlobStoreError, match="File name too long"):
            await store.put("k", b"data")
    assert os.listdir(tmp_path) == []
    assert (await store.put("k", b"data")).created


async def test_a_failing_temp_cleanup_does_not_hide_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalBlobStore(tmp_path)
    await store.put("k", b"first")
    real_unlink = os.unlink

    def failing_unlink(path: str, **kw: Any) -> None:
        if ".tmp-" in path:
            raise OSError(errno.EIO, "Input/output error", path)
        real_unlink(path, **kw)

    monkeypatch.setattr(os, "unlink", failing_unlink)
    with pytest.raises(ArchiveConflict):
        await store.put("k", b"second")
    with pytest.raises(ArchiveConflict):
        await store.put("k", _chunks(b"second, streamed"))
