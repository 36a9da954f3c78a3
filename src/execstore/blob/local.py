"""A blob store in a local directory: plain files, atomic and create-only.

Each blob is an ordinary file at ``root/<key>`` (so ``gunzip < root/logs/.../x.ndjson.gz``
just works). Its metadata lives beside it in a hidden sidecar ``.<name>.meta.json``; keys
cannot have segments starting with '.', so sidecars and temporary files never collide
with a key and never show up in :meth:`LocalBlobStore.list`.

A put writes a temporary file in the target directory, fsyncs it and then ``os.link``s it
to the final name. ``link`` fails if the name exists, which makes the put create-only
even against a concurrent writer: exactly one link wins, the loser compares bytes.
Blocking file work runs in worker threads so the event loop stays responsive.

One difference from Azure, inherent to directories: a key cannot be both a blob and a
prefix of another blob ("a" and "a/b"); such a put raises BlobStoreError. Archive keys
(``archive_key``) always end in a file suffix, so they never collide this way.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any

from execstore.blob.base import SHA256_METADATA, BlobInfo, Metadata, PutResult, resolve_metadata
from execstore.blob.keys import InvalidBlobKey, validate_key
from execstore.errors import ArchiveConflict, ArchiveMissing, BlobStoreError

__all__ = ["LocalBlobStore"]

_HASH_CHUNK = 1 << 20


class LocalBlobStore:
    """Write-once blobs as plain files under ``root`` (created on first write)."""

    def __init__(self, root: Path | str, *, fsync: bool = True) -> None:
        self.root = Path(root)
        # fsync is what makes "written" mean "survives a power cut"; tests may turn it off.
        self.fsync = fsync

    def __repr__(self) -> str:
        return f"LocalBlobStore(root={str(self.root)!r})"

    async def put(
        self,
        key: str,
        data: bytes | AsyncIterable[bytes],
        *,
        metadata: Metadata = None,
    ) -> PutResult:
        """A PutResult; created=False when ``key`` already holds these exact bytes."""
        path = self._path(key)
        if isinstance(data, bytes | bytearray | memoryview):
            payload = bytes(data)
            return await asyncio.to_thread(self._put_bytes, key, path, payload, metadata)
        with _translate(key):
            tmp, handle = await asyncio.to_thread(self._open_temp, path)
        try:
            sha = hashlib.sha256()
            size = 0
            try:
                async for chunk in data:
                    sha.update(chunk)
                    size += len(chunk)
                    with _translate(key):
                        await asyncio.to_thread(handle.write, chunk)
                with _translate(key):
                    await asyncio.to_thread(self._sync_close, handle)
            finally:
                handle.close()
            return await asyncio.to_thread(
                self._commit, key, path, tmp, sha.digest(), size, resolve_metadata(metadata)
            )
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    async def get(self, key: str) -> bytes:
        """The whole blob's bytes; ArchiveMissing if there is none."""
        path = self._path(key)
        return await asyncio.to_thread(self._read_all, key, path)

    async def stream(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """The blob in chunks of ``chunk_size`` bytes; ArchiveMissing if there is none."""
        path = self._path(key)
        handle = await asyncio.to_thread(self._open_read, key, path)
        try:
            while True:
                with _translate(key):
                    chunk = await asyncio.to_thread(self._read_chunk, handle, chunk_size)
                if not chunk:
                    return
                yield chunk
        finally:
            handle.close()

    async def exists(self, key: str) -> bool:
        """Whether ``key`` holds a blob."""
        path = self._path(key)
        return await asyncio.to_thread(path.is_file)

    async def delete(self, key: str) -> bool:
        """True if ``key`` held a blob that is now removed; False if there was none."""
        path = self._path(key)

        def remove() -> bool:
            with _translate(key):
                try:
                    path.unlink()
                except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                    return False
                with contextlib.suppress(FileNotFoundError):
                    _sidecar(path).unlink()
                self._sync_dir(path.parent)
                return True

        return await asyncio.to_thread(remove)

    async def list(self, prefix: str = "") -> AsyncIterator[BlobInfo]:
        """Every blob whose key starts with ``prefix``, in key order."""
        start = self._listing_start(prefix)
        infos = await asyncio.to_thread(self._scan, start, prefix)
        for info in infos:
            yield info

    async def close(self) -> None:
        """Nothing to release: files are opened per call."""

    # -- the blocking halves, run in worker threads ------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _put_bytes(self, key: str, path: Path, data: bytes, metadata: Metadata) -> PutResult:
        with _translate(key):
            tmp, handle = self._open_temp(path)
        try:
            with _translate(key):
                try:
                    handle.write(data)
                    self._sync_close(handle)
                finally:
                    handle.close()
            sha = hashlib.sha256(data).digest()
            return self._commit(key, path, tmp, sha, len(data), resolve_metadata(metadata))
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _open_temp(self, path: Path) -> tuple[Path, IO[bytes]]:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
        return tmp, tmp.open("xb")

    def _sync_close(self, handle: IO[bytes]) -> None:
        handle.flush()
        if self.fsync:
            os.fsync(handle.fileno())
        handle.close()

    def _commit(
        self, key: str, path: Path, tmp: Path, sha: bytes, size: int, metadata: dict[str, str]
    ) -> PutResult:
        with _translate(key):
            try:
                os.link(tmp, path)
            except FileExistsError:
                existing = self._hash_file(key, path)
                if existing != sha:
                    raise ArchiveConflict(key) from None
                if not _sidecar(path).exists():
                    # The first writer died between link and sidecar: finish its job.
                    self._write_sidecar(path, sha, size, metadata)
                return PutResult(key=key, size=size, sha256=sha, created=False)
            self._write_sidecar(path, sha, size, metadata)
            self._sync_dir(path.parent)
        return PutResult(key=key, size=size, sha256=sha, created=True)

    def _write_sidecar(self, path: Path, sha: bytes, size: int, metadata: dict[str, str]) -> None:
        body = {"size": size, "metadata": {**metadata, SHA256_METADATA: sha.hex()}}
        target = _sidecar(path)
        tmp = target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex}")
        try:
            with tmp.open("xb") as handle:
                handle.write(json.dumps(body, ensure_ascii=False, sort_keys=True).encode())
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _sync_dir(self, directory: Path) -> None:
        # The directory entry must be durable too, or a crash can forget the new name.
        if not self.fsync or os.name != "posix":
            return
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _hash_file(self, key: str, path: Path) -> bytes:
        sha = hashlib.sha256()
        with _translate(key), path.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                sha.update(chunk)
        return sha.digest()

    def _read_all(self, key: str, path: Path) -> bytes:
        with self._open_read(key, path) as handle, _translate(key):
            return handle.read()

    def _open_read(self, key: str, path: Path) -> IO[bytes]:
        with _translate(key, missing=True):
            return path.open("rb")

    def _read_chunk(self, handle: IO[bytes], size: int) -> bytes:
        return handle.read(size)

    def _listing_start(self, prefix: str) -> Path:
        # Only the directory part of the prefix picks where to walk; it must stay inside
        # root, so it obeys the key rules (a partial last segment is matched by name).
        directory = prefix.rpartition("/")[0]
        if prefix.startswith("/") or "\\" in prefix:
            raise InvalidBlobKey(prefix, "prefix must be relative")
        if directory:
            validate_key(directory)
            return self.root.joinpath(*directory.split("/"))
        return self.root

    def _scan(self, start: Path, prefix: str) -> builtins.list[BlobInfo]:
        found: builtins.list[BlobInfo] = []
        with _translate(prefix):
            for path in _walk_files(start):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append(_info(key, path))
        found.sort(key=lambda info: info.key.encode("utf-8"))
        return found


def _walk_files(start: Path) -> Iterator[Path]:
    try:
        entries = list(os.scandir(start))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue  # temporary files and sidecars
        if entry.is_dir(follow_symlinks=False):
            yield from _walk_files(Path(entry.path))
        elif entry.is_file(follow_symlinks=False):
            yield Path(entry.path)


def _info(key: str, path: Path) -> BlobInfo:
    metadata: dict[str, str] = {}
    try:
        body: Any = json.loads(_sidecar(path).read_bytes())
        metadata = {str(k): str(v) for k, v in body.get("metadata", {}).items()}
    except (FileNotFoundError, ValueError, AttributeError):
        pass  # a blob without (readable) sidecar is still a blob
    return BlobInfo(key=key, size=path.stat().st_size, metadata=metadata)


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}.meta.json")


@contextlib.contextmanager
def _translate(key: str, *, missing: bool = False) -> Iterator[None]:
    """OSError -> ArchiveMissing (when the blob is absent) or BlobStoreError."""
    try:
        yield
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        if missing:
            raise ArchiveMissing(key) from exc
        raise BlobStoreError(f"local blob store failed on {key!r}: {exc}") from exc
    except OSError as exc:
        raise BlobStoreError(f"local blob store failed on {key!r}: {exc}") from exc
