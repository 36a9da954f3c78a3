"""What only the local directory store promises: plain files, atomic commits, no leftovers."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from execstore.blob import InvalidBlobKey, LocalBlobStore
from execstore.errors import ArchiveConflict


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
