"""How ``details`` is stored in a hot row: canonical JSON, compressed with a dictionary.

Audit details are small JSON documents (1-3 KB) that repeat their keys, ids' shapes and
phrases from record to record. Compressed one by one without help they barely shrink
(PostgreSQL's own compression skipped 89% of them); compressed with a dictionary
trained on the organization's own records they shrink several times, because the
dictionary already holds what records have in common.

``phi_audit_log.dictionary`` says how a row's ``details`` bytes are encoded:

====  =====================================================================
 0    the canonical JSON text, UTF-8, uncompressed
-1    raw deflate (zlib, stdlib), no dictionary
-2    zstd, no dictionary
>=1   the organization's dictionary of that version (``phi_audit_dictionaries``:
      its ``codec`` is 1 = zstd with a trained dictionary, 2 = raw deflate with a
      preset dictionary built from sample records)
====  =====================================================================

Dictionaries are immutable and never deleted, so every record stays readable whatever
dictionary is current. zstd needs the optional ``zstandard`` package (``execstore[zstd]``,
included in ``dev``); without it new dictionaries use deflate (stdlib ``zlib`` with a
preset dictionary: worse ratio, same guarantees) and reading a zstd-encoded record
raises ConfigurationError naming the extra. Compressed bytes are never hashed: the
chain covers the canonical JSON, so re-encoding or archiving never touches evidence.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from execstore.errors import ConfigurationError

__all__ = [
    "DICTIONARY_BYTES",
    "PLAIN",
    "ZLIB",
    "ZLIB_PLAIN",
    "ZSTD",
    "ZSTD_PLAIN",
    "DetailsCodec",
    "Dictionary",
    "build_dictionary",
    "zstd_available",
]

PLAIN: Final = 0
ZLIB_PLAIN: Final = -1
ZSTD_PLAIN: Final = -2
ZSTD: Final = 1
"""A dictionary row's codec: zstd with a trained dictionary."""
ZLIB: Final = 2
"""A dictionary row's codec: raw deflate with a preset dictionary."""

DICTIONARY_BYTES: Final = 32 * 1024
"""Dictionary size: zstd's sweet spot for kilobyte records; deflate's window maximum."""
_ZSTD_LEVEL: Final = 6
_ZLIB_LEVEL: Final = 9
# Too small a record costs more compressed than plain: below this, store it plain.
_MIN_COMPRESS: Final = 64


def zstd_available() -> bool:
    """True when the optional ``zstandard`` package can be imported."""
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError as exc:
        raise ConfigurationError(
            "this audit record's details are zstd-compressed: install the optional "
            "'zstandard' package (pip install 'execstore[zstd]')"
        ) from exc
    return zstandard


@dataclass(frozen=True, slots=True)
class Dictionary:
    """One immutable dictionary version of an organization."""

    version: int
    codec: int
    content: bytes
    sample_count: int = 0

    @property
    def sha256(self) -> bytes:
        """The digest recorded beside the content."""
        return hashlib.sha256(self.content).digest()


@dataclass(slots=True)
class DetailsCodec:
    """Encodes and decodes details for one organization with its dictionaries."""

    dictionaries: dict[int, Dictionary] = field(default_factory=dict)
    _compressors: dict[int, Any] = field(default_factory=dict)
    _decoders: dict[int, Callable[[bytes], bytes]] = field(default_factory=dict)

    def add(self, dictionary: Dictionary) -> None:
        """Make ``dictionary`` known (versions never change, so adding twice is harmless)."""
        self.dictionaries.setdefault(dictionary.version, dictionary)

    @property
    def current(self) -> int:
        """The encoding new records get: the newest usable dictionary, else plain zstd/deflate."""
        usable = [
            d.version
            for d in self.dictionaries.values()
            if d.codec == ZLIB or (d.codec == ZSTD and zstd_available())
        ]
        if usable:
            return max(usable)
        return ZSTD_PLAIN if zstd_available() else ZLIB_PLAIN

    def encode(self, text: str | None, encoding: int | None = None) -> tuple[bytes | None, int]:
        """The stored bytes of canonical details ``text`` and the encoding used."""
        if text is None:
            return None, PLAIN
        raw = text.encode("utf-8")
        if len(raw) < _MIN_COMPRESS:
            return raw, PLAIN
        how = self.current if encoding is None else encoding
        stored = self._compress(how, raw)
        if len(stored) >= len(raw):
            return raw, PLAIN
        return stored, how

    def decode(self, stored: bytes | None, encoding: int) -> bytes | None:
        """The canonical JSON bytes of a row's ``details``."""
        return None if stored is None else self.decoder(encoding)(stored)

    def decoder(self, encoding: int) -> Callable[[bytes], bytes]:
        """The function that turns stored details of ``encoding`` into canonical JSON bytes.

        One function per encoding, made once (a zstd decompressor holds its dictionary
        ready), so reading many rows costs one call each. KeyError for a dictionary
        version this codec does not know.
        """
        found = self._decoders.get(encoding)
        if found is not None:
            return found
        if encoding == PLAIN:
            found = bytes
        elif encoding == ZLIB_PLAIN:
            found = functools.partial(zlib.decompress, wbits=-15)
        elif encoding == ZSTD_PLAIN:
            found = _zstd().ZstdDecompressor().decompress
        else:
            dictionary = self.dictionaries.get(encoding)
            if dictionary is None:
                raise KeyError(encoding)
            if dictionary.codec == ZLIB:
                found = functools.partial(_inflate, dictionary.content)
            else:
                zstd = _zstd()
                found = zstd.ZstdDecompressor(
                    dict_data=zstd.ZstdCompressionDict(dictionary.content)
                ).decompress
        self._decoders[encoding] = found
        return found

    def _compress(self, encoding: int, raw: bytes) -> bytes:
        if encoding == ZLIB_PLAIN:
            deflater = zlib.compressobj(_ZLIB_LEVEL, zlib.DEFLATED, -15)
            return deflater.compress(raw) + deflater.flush()
        if encoding == ZSTD_PLAIN:
            return bytes(self._zstd_compressor(ZSTD_PLAIN, None).compress(raw))
        dictionary = self.dictionaries[encoding]
        if dictionary.codec == ZLIB:
            primed = self._compressors.get(encoding)
            if primed is None:
                primed = zlib.compressobj(_ZLIB_LEVEL, zlib.DEFLATED, -15, zdict=dictionary.content)
                self._compressors[encoding] = primed
            # Copying a primed deflater is far cheaper than loading the dictionary again.
            deflater = primed.copy()
            return deflater.compress(raw) + deflater.flush()
        return bytes(self._zstd_compressor(encoding, dictionary.content).compress(raw))

    def _zstd_compressor(self, encoding: int, content: bytes | None) -> Any:
        found = self._compressors.get(encoding)
        if found is None:
            zstd = _zstd()
            options: dict[str, Any] = {
                "level": _ZSTD_LEVEL,
                "write_checksum": False,  # the hash chain covers the content
                "write_dict_id": False,  # the row says which dictionary
                "write_content_size": True,
            }
            if content is not None:
                options["dict_data"] = zstd.ZstdCompressionDict(content)
            found = self._compressors[encoding] = zstd.ZstdCompressor(**options)
        return found


def _inflate(dictionary: bytes, stored: bytes) -> bytes:
    inflater = zlib.decompressobj(-15, zdict=dictionary)
    return inflater.decompress(stored) + inflater.flush()


def build_dictionary(
    samples: Sequence[bytes], version: int, *, codec: int | None = None
) -> Dictionary | None:
    """A new dictionary trained on ``samples`` (canonical details), or None if too few.

    zstd trains with its COVER algorithm; without ``zstandard`` (or with ``codec=ZLIB``)
    the deflate preset dictionary is the samples themselves, newest last (deflate finds
    matches at short distances cheapest), up to 32 KiB.
    """
    usable = [s for s in samples if len(s) >= _MIN_COMPRESS]
    how = codec if codec is not None else (ZSTD if zstd_available() else ZLIB)
    if how == ZSTD:
        if len(usable) < 64:
            return None
        zstd = _zstd()
        try:
            trained = zstd.train_dictionary(DICTIONARY_BYTES, usable, level=_ZSTD_LEVEL)
        except zstd.ZstdError:
            return None  # too little or too uniform data: try again with more records
        return Dictionary(version, ZSTD, trained.as_bytes(), len(usable))
    if len(usable) < 8:
        return None
    picked: list[bytes] = []
    size = 0
    for sample in reversed(usable):
        if size + len(sample) > DICTIONARY_BYTES:
            break
        picked.append(sample)
        size += len(sample)
    return Dictionary(version, ZLIB, b"".join(reversed(picked)), len(picked))
