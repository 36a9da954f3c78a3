"""A blob store in a local directory: plain files, atomic and create-only.

Each blob is an ordinary file at ``root/<key>`` (so ``gunzip < root/logs/.../x.ndjson.gz``
just works). Its metadata lives beside it in a hidden sidecar ``.<name>.meta.json``; keys
cannot have segments starting with '.', so sidecars and temporary files never collide
with a key and never show up in :meth:`LocalBlobStore.list`.

A put writes a temporary file in the target directory, fsyncs it and then ``os.link``s it
to the final name. ``link`` fails if the name exists, which makes the put create-only
even against a concurrent writer: exactly one link wins, the loser compares bytes.
Blocking file work runs in worker threads so the event loop stays responsive.

Nothing outside ``root`` is ever read, written or removed. Every operation walks from
``root`` one key segment at a time through directory descriptors opened with
``O_NOFOLLOW`` (``openat`` and friends), so a symbolic link anywhere below the root, a
directory on the way or the blob itself, is refused with :class:`BlobStoreError` naming
the key, and a link swapped in while an operation runs is refused too, not followed.
A listing does not descend into or report symbolic links it meets below its prefix.
The root itself may be a link: it is configuration, not data. This needs a POSIX
system (Linux, macOS); elsewhere building the store raises ConfigurationError.

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
import re
import stat
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

from execstore.blob.base import SHA256_METADATA, BlobInfo, Metadata, PutResult, resolve_metadata
from execstore.blob.keys import InvalidBlobKey, validate_key
from execstore.errors import ArchiveConflict, ArchiveMissing, BlobStoreError, ConfigurationError

__all__ = ["LocalBlobStore"]

_HASH_CHUNK: Final = 1 << 20

_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY: Final = getattr(os, "O_DIRECTORY", 0)
_OPEN_ROOT: Final = os.O_RDONLY | _DIRECTORY | _CLOEXEC
_OPEN_DIR: Final = _OPEN_ROOT | _NOFOLLOW
# O_NONBLOCK: opening a FIFO planted under a key's name must not hang the read.
_OPEN_READ: Final = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC
_CREATE: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC

# The names the store gives its own hidden files (see _stage and _write_sidecar).
_TEMP_NAME: Final = re.compile(r"\.(?P<owner>.+?)(?:\.meta\.json)?\.tmp-[0-9a-f]{32}", re.DOTALL)
_SIDECAR_NAME: Final = re.compile(r"\.(?P<owner>.+)\.meta\.json", re.DOTALL)


def _confinement_supported() -> bool:
    needs_dir_fd = {os.open, os.stat, os.mkdir, os.link, os.unlink, os.rename}
    return bool(_NOFOLLOW) and needs_dir_fd <= os.supports_dir_fd and os.scandir in os.supports_fd


class LocalBlobStore:
    """Write-once blobs as plain files under ``root`` (created on first write)."""

    def __init__(self, root: Path | str, *, fsync: bool = True) -> None:
        if not _confinement_supported():
            raise ConfigurationError(
                "EXECSTORE_BLOB_URL: the local blob store needs a POSIX system "
                "(openat with O_NOFOLLOW) to keep blobs inside their root"
            )
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
        segments = _segments(key)
        if isinstance(data, bytes | bytearray | memoryview):
            payload = bytes(data)
            return await asyncio.to_thread(self._put_bytes, key, segments, payload, metadata)
        with _translate(key):
            staged = await asyncio.to_thread(self._stage, key, segments)
        try:
            sha = hashlib.sha256()
            size = 0
            async for chunk in data:
                sha.update(chunk)
                size += len(chunk)
                with _translate(key):
                    await asyncio.to_thread(staged.handle.write, chunk)
            with _translate(key):
                await asyncio.to_thread(self._sync_close, staged.handle)
            return await asyncio.to_thread(
                self._commit, key, staged, sha.digest(), size, resolve_metadata(metadata)
            )
        finally:
            staged.discard()

    async def get(self, key: str) -> bytes:
        """The whole blob's bytes; ArchiveMissing if there is none."""
        _segments(key)
        return await asyncio.to_thread(self._read_all, key)

    async def stream(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """The blob in chunks of ``chunk_size`` bytes; ArchiveMissing if there is none."""
        _segments(key)
        handle = await asyncio.to_thread(self._open_read, key)
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
        segments = _segments(key)
        return await asyncio.to_thread(self._exists, key, segments)

    async def delete(self, key: str) -> bool:
        """True if ``key`` held a blob that is now removed; False if there was none."""
        segments = _segments(key)
        return await asyncio.to_thread(self._delete, key, segments)

    async def list(self, prefix: str = "") -> AsyncIterator[BlobInfo]:
        """Every blob whose key starts with ``prefix``, in key order."""
        directory = _listing_directory(prefix)
        infos = await asyncio.to_thread(self._scan, directory, prefix)
        for info in infos:
            yield info

    async def sweep_partial(
        self, prefix: str, *, older_than: datetime, dry_run: bool = False
    ) -> builtins.list[str]:
        """The crash leftovers under ``prefix`` last modified before ``older_than``.

        Leftovers are the hidden temporary files of puts killed before they finished
        (``.<name>.tmp-*`` for blobs, ``.<name>.meta.json.tmp-*`` for sidecars) and
        sidecars whose blob is gone (a delete killed between its two unlinks). Listings
        skip them, so nothing else ever removes them. ``prefix`` selects by the key a
        leftover belongs to, as :meth:`list` does. Returns their paths relative to the
        root, in byte order, and removes them unless ``dry_run``; blobs, live sidecars,
        links and files the store did not make are never touched. A temporary file
        younger than ``older_than`` may belong to a put still running: pick a cut-off
        well before now (a naive ``older_than`` is read as UTC).
        """
        directory = _listing_directory(prefix)
        if older_than.tzinfo is None:
            older_than = older_than.replace(tzinfo=UTC)
        cutoff = older_than.timestamp()
        return await asyncio.to_thread(self._sweep, directory, prefix, cutoff, dry_run)

    async def close(self) -> None:
        """Nothing to release: files are opened per call."""

    # -- the blocking halves, run in worker threads ------------------------------------

    @contextlib.contextmanager
    def _directory(self, key: str, segments: Sequence[str], *, create: bool) -> Iterator[int]:
        """A descriptor of ``root/<segments>``, reached without following any link.

        Missing directories raise FileNotFoundError, or are made when ``create``; a
        segment that is a file raises NotADirectoryError; a link raises BlobStoreError.
        """
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, _OPEN_ROOT)
        try:
            for depth in range(1, len(segments) + 1):
                child = self._open_subdirectory(key, fd, segments[:depth], create=create)
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def _open_subdirectory(
        self, key: str, parent: int, segments: Sequence[str], *, create: bool
    ) -> int:
        name = segments[-1]
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, dir_fd=parent)
        try:
            return os.open(name, _OPEN_DIR, dir_fd=parent)
        except OSError as exc:
            _refuse_link(key, parent, segments, exc)
            raise

    def _put_bytes(
        self, key: str, segments: Sequence[str], data: bytes, metadata: Metadata
    ) -> PutResult:
        with _translate(key):
            staged = self._stage(key, segments)
        try:
            with _translate(key):
                try:
                    staged.handle.write(data)
                    self._sync_close(staged.handle)
                finally:
                    staged.handle.close()
            sha = hashlib.sha256(data).digest()
            return self._commit(key, staged, sha, len(data), resolve_metadata(metadata))
        finally:
            staged.discard()

    def _stage(self, key: str, segments: Sequence[str]) -> _Staged:
        """A new temporary file beside where ``key`` goes, with its directory held open."""
        with self._directory(key, segments[:-1], create=True) as directory:
            held = os.dup(directory)
        name = segments[-1]
        temp = f".{name}.tmp-{uuid.uuid4().hex}"
        try:
            handle = os.fdopen(os.open(temp, _CREATE, 0o666, dir_fd=held), "wb")
        except BaseException:
            os.close(held)
            raise
        written = os.fstat(handle.fileno())
        return _Staged(
            segments=tuple(segments),
            directory=held,
            temp=temp,
            handle=handle,
            identity=(written.st_dev, written.st_ino),
        )

    def _sync_close(self, handle: IO[bytes]) -> None:
        handle.flush()
        if self.fsync:
            os.fsync(handle.fileno())
        handle.close()

    def _commit(
        self, key: str, staged: _Staged, sha: bytes, size: int, metadata: dict[str, str]
    ) -> PutResult:
        directory, name = staged.directory, staged.segments[-1]
        with _translate(key):
            try:
                os.link(staged.temp, name, src_dir_fd=directory, dst_dir_fd=directory)
            except FileExistsError:
                existing = self._hash_blob(key, directory, staged.segments)
                if existing != sha:
                    raise ArchiveConflict(key) from None
                if _lstat(key, directory, (*staged.segments[:-1], _sidecar(name))) is None:
                    # The first writer died between link and sidecar: finish its job.
                    self._write_sidecar(directory, name, sha, size, metadata)
                return PutResult(key=key, size=size, sha256=sha, created=False)
            try:
                self._write_sidecar(directory, name, sha, size, metadata)
            except BaseException:
                # A blob without its sidecar looks committed, and an identical re-put
                # would fail the same way: take back the name this put just linked.
                _unlink_if_same(directory, name, staged.identity)
                raise
            self._sync_dir(directory)
        return PutResult(key=key, size=size, sha256=sha, created=True)

    def _write_sidecar(
        self, directory: int, name: str, sha: bytes, size: int, metadata: dict[str, str]
    ) -> None:
        body = {"size": size, "metadata": {**metadata, SHA256_METADATA: sha.hex()}}
        target = _sidecar(name)
        temp = f"{target}.tmp-{uuid.uuid4().hex}"
        try:
            with os.fdopen(os.open(temp, _CREATE, 0o666, dir_fd=directory), "wb") as handle:
                handle.write(json.dumps(body, ensure_ascii=False, sort_keys=True).encode())
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())
            os.replace(temp, target, src_dir_fd=directory, dst_dir_fd=directory)
        finally:
            # Cleaning up must not replace the error that got us here (an ENAMETOOLONG
            # create fails the unlink the same way); a stray temp is sweep_partial's job.
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=directory)

    def _sync_dir(self, directory: int) -> None:
        # The directory entry must be durable too, or a crash can forget the new name.
        if self.fsync:
            os.fsync(directory)

    def _hash_blob(self, key: str, directory: int, segments: Sequence[str]) -> bytes:
        sha = hashlib.sha256()
        with _translate(key), _open_file(key, directory, segments) as handle:
            while chunk := handle.read(_HASH_CHUNK):
                sha.update(chunk)
        return sha.digest()

    def _read_all(self, key: str) -> bytes:
        with self._open_read(key) as handle, _translate(key):
            return handle.read()

    def _open_read(self, key: str) -> IO[bytes]:
        segments = _segments(key)
        with (
            _translate(key, missing=True),
            self._directory(key, segments[:-1], create=False) as directory,
        ):
            return _open_file(key, directory, segments)

    def _read_chunk(self, handle: IO[bytes], size: int) -> bytes:
        return handle.read(size)

    def _exists(self, key: str, segments: Sequence[str]) -> bool:
        with _translate(key):
            try:
                with self._directory(key, segments[:-1], create=False) as directory:
                    found = _lstat(key, directory, segments)
            except (FileNotFoundError, NotADirectoryError):
                return False
        return found is not None and stat.S_ISREG(found.st_mode)

    def _delete(self, key: str, segments: Sequence[str]) -> bool:
        name = segments[-1]
        with _translate(key):
            try:
                with self._directory(key, segments[:-1], create=False) as directory:
                    found = _lstat(key, directory, segments)
                    if found is None or not stat.S_ISREG(found.st_mode):
                        return False
                    # unlink never follows a link, so a swap after the check removes
                    # at most an entry inside the root.
                    os.unlink(name, dir_fd=directory)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(_sidecar(name), dir_fd=directory)
                    self._sync_dir(directory)
                    return True
            except (FileNotFoundError, NotADirectoryError):
                return False

    def _scan(self, directory: str, prefix: str) -> builtins.list[BlobInfo]:
        segments = directory.split("/") if directory else []
        found: builtins.list[BlobInfo] = []
        with _translate(prefix):
            try:
                with self._directory(prefix, segments, create=False) as start:
                    found.extend(_walk_blobs(start, f"{directory}/" if directory else "", prefix))
            except (FileNotFoundError, NotADirectoryError):
                return []
        found.sort(key=lambda info: info.key.encode("utf-8"))
        return found

    def _sweep(
        self, directory: str, prefix: str, cutoff: float, dry_run: bool
    ) -> builtins.list[str]:
        segments = directory.split("/") if directory else []
        found: builtins.list[str] = []
        with _translate(prefix):
            try:
                with self._directory(prefix, segments, create=False) as start:
                    relative = f"{directory}/" if directory else ""
                    found.extend(_sweep_leftovers(start, relative, prefix, cutoff, dry_run))
            except (FileNotFoundError, NotADirectoryError):
                return []
        found.sort(key=lambda path: path.encode("utf-8"))
        return found


@dataclass(slots=True)
class _Staged:
    """A put in progress: its temporary file, open, in a directory held open."""

    segments: tuple[str, ...]
    directory: int
    temp: str
    handle: IO[bytes]
    identity: tuple[int, int]  # (device, inode) of the temporary file, later the blob

    def discard(self) -> None:
        """Close everything; remove the temporary file (the blob, if linked, stays)."""
        self.handle.close()
        with contextlib.suppress(OSError):  # see _write_sidecar
            os.unlink(self.temp, dir_fd=self.directory)
        os.close(self.directory)


def _segments(key: str) -> builtins.list[str]:
    """The key's path segments; raises InvalidBlobKey for a key no backend accepts."""
    return validate_key(key).split("/")


def _listing_directory(prefix: str) -> str:
    # Only the directory part of the prefix picks where to walk; it must stay inside
    # root, so it obeys the key rules (a partial last segment is matched by name).
    directory = prefix.rpartition("/")[0]
    if prefix.startswith("/") or "\\" in prefix:
        raise InvalidBlobKey(prefix, "prefix must be relative")
    if directory:
        validate_key(directory)
    return directory


def _refuse_link(key: str, parent: int, segments: Sequence[str], exc: OSError) -> None:
    """Raise BlobStoreError if ``segments[-1]`` in ``parent`` is a symbolic link."""
    try:
        mode = os.stat(segments[-1], dir_fd=parent, follow_symlinks=False).st_mode
    except OSError:
        return
    if stat.S_ISLNK(mode):
        where = "/".join(segments)
        raise BlobStoreError(
            f"local blob store refuses {key!r}: {where!r} is a symbolic link"
        ) from exc


def _unlink_if_same(directory: int, name: str, identity: tuple[int, int]) -> None:
    """Remove ``name`` if it is still the file ``identity`` names; never raise."""
    with contextlib.suppress(OSError):
        found = os.stat(name, dir_fd=directory, follow_symlinks=False)
        if (found.st_dev, found.st_ino) == identity:
            os.unlink(name, dir_fd=directory)


def _lstat(key: str, directory: int, segments: Sequence[str]) -> os.stat_result | None:
    """The entry ``segments[-1]`` in ``directory`` (None if absent); a link is refused."""
    try:
        found = os.stat(segments[-1], dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(found.st_mode):
        where = "/".join(segments)
        raise BlobStoreError(f"local blob store refuses {key!r}: {where!r} is a symbolic link")
    return found


def _open_file(key: str, directory: int, segments: Sequence[str]) -> IO[bytes]:
    """The regular file ``segments[-1]`` in ``directory``, open for reading; never a link."""
    try:
        fd = os.open(segments[-1], _OPEN_READ, dir_fd=directory)
    except OSError as exc:
        _refuse_link(key, directory, segments, exc)
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(f"{'/'.join(segments)} is not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _leftover_owner(name: str) -> tuple[str, bool] | None:
    """For a file the store leaves behind: the blob name it belongs to, and whether it is
    a sidecar (kept while its blob exists); None for anything else."""
    temp = _TEMP_NAME.fullmatch(name)
    if temp:
        return temp["owner"], False
    sidecar = _SIDECAR_NAME.fullmatch(name)
    if sidecar:
        return sidecar["owner"], True
    return None


def _sweep_leftovers(
    directory: int, relative: str, prefix: str, cutoff: float, dry_run: bool
) -> Iterator[str]:
    with os.scandir(directory) as scan:
        entries = builtins.list(scan)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            below = f"{relative}{entry.name}/"
            if entry.name.startswith(".") or not (
                below.startswith(prefix) or prefix.startswith(below)
            ):
                continue
            try:
                child = os.open(entry.name, _OPEN_DIR, dir_fd=directory)
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                yield from _sweep_leftovers(child, below, prefix, cutoff, dry_run)
            finally:
                os.close(child)
            continue
        owned = _leftover_owner(entry.name)
        if owned is None or not entry.is_file(follow_symlinks=False):
            continue
        owner, is_sidecar = owned
        if not (relative + owner).startswith(prefix):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                continue
            if is_sidecar and _is_file(directory, owner):
                continue
            if not dry_run:
                os.unlink(entry.name, dir_fd=directory)
        except FileNotFoundError:
            continue  # gone already: a put finished or another sweep was faster
        yield relative + entry.name


def _is_file(directory: int, name: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _walk_blobs(directory: int, relative: str, prefix: str) -> Iterator[BlobInfo]:
    with os.scandir(directory) as scan:
        entries = builtins.list(scan)
    for entry in entries:
        if entry.name.startswith("."):
            continue  # temporary files and sidecars
        key = relative + entry.name
        if entry.is_dir(follow_symlinks=False):
            below = f"{key}/"
            if not (below.startswith(prefix) or prefix.startswith(below)):
                continue
            try:
                child = os.open(entry.name, _OPEN_DIR, dir_fd=directory)
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed or swapped for a link since the scan: not ours to follow
            try:
                yield from _walk_blobs(child, below, prefix)
            finally:
                os.close(child)
        elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
            info = _info(directory, entry.name, key)
            if info is not None:
                yield info


def _info(directory: int, name: str, key: str) -> BlobInfo | None:
    try:
        size = os.stat(name, dir_fd=directory, follow_symlinks=False).st_size
    except FileNotFoundError:
        return None  # deleted since the scan
    metadata: dict[str, str] = {}
    try:
        with _open_file(key, directory, [_sidecar(name)]) as handle:
            body: Any = json.loads(handle.read())
        metadata = {str(k): str(v) for k, v in body.get("metadata", {}).items()}
    except (OSError, BlobStoreError, ValueError, AttributeError):
        pass  # a blob without (readable) sidecar is still a blob
    return BlobInfo(key=key, size=size, metadata=metadata)


def _sidecar(name: str) -> str:
    return f".{name}.meta.json"


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
