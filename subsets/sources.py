"""Image sources: an image folder, WebDataset tar shards, a Hugging Face data set (`hf_source`), or a built-in one.

Every source lists its records in a stable order with stable string keys. Reading a record's
bytes is separate from decoding them, so a job can walk a corpus cheaply and decode only the
rows it owns (one process of several, or the shards a resumed job still lacks).
"""

from __future__ import annotations

import atexit
import bisect
import functools
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import braceexpand
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DiskFull, InputError
from .fileio import is_disk_full

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "ppm")
BUILTIN_ROOT = Path(__file__).parent / "data"
BUILTINS = {  # name -> (folder under data/, split)
    "cifar10-demo": ("cifar10-demo", "train"),
    "cifar10-demo-test": ("cifar10-demo", "test"),
}


@dataclass(frozen=True)
class RawRecord:
    key: str
    label: int | None
    origin: str  # the file or shard it came from, for messages
    read: Callable[[], bytes] = field(repr=False)


class UnreadableImage(Exception):
    def __init__(self, key: str, origin: str, reason: str):
        super().__init__(f"{origin}: image {key!r} is unreadable ({reason})")
        self.key, self.origin, self.reason = key, origin, reason


def decode_image(record: RawRecord) -> Image.Image:
    """Decode a record to an RGB image, or raise UnreadableImage saying why."""
    try:
        data = record.read()
    except OSError as e:
        raise UnreadableImage(record.key, record.origin, f"cannot read: {e}") from None
    if not data:
        raise UnreadableImage(record.key, record.origin, "empty file")
    try:
        with Image.open(io.BytesIO(data)) as im:
            return to_rgb(im, record)
    except UnidentifiedImageError:
        raise UnreadableImage(record.key, record.origin, "not a recognised image format") from None
    except Image.DecompressionBombError as e:  # a header claiming billions of pixels: never decoded
        raise UnreadableImage(record.key, record.origin, f"too large to decode safely ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise UnreadableImage(record.key, record.origin, str(e) or type(e).__name__) from None


def to_rgb(im: Image.Image, record: RawRecord) -> Image.Image:
    """8-bit RGB. 16-bit (and 32-bit integer) grayscale is scaled from its real 16-bit range: PIL's own conversion
    clips it at 255 and turns almost every pixel white."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        import numpy as np

        a = np.asarray(im, dtype=np.float64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise UnreadableImage(record.key, record.origin, f"{im.mode} image with values outside 0..65535")
        return Image.fromarray(np.round(a / 257.0).astype(np.uint8), "L").convert("RGB")
    if im.mode == "F":
        raise UnreadableImage(record.key, record.origin, "32-bit float image: convert it to 8 or 16 bits per channel")
    return im.convert("RGB")


class RowRanges:
    """Sorted, disjoint, half-open ranges of rows, tested by bisection (an embedding job of a large corpus hands a
    process thousands)."""

    def __init__(self, ranges: list[tuple[int, int]]):
        self.ranges = sorted(ranges)
        self.starts = [a for a, _ in self.ranges]
        self.end = self.ranges[-1][1] if self.ranges else 0

    def __contains__(self, row: int) -> bool:
        i = bisect.bisect_right(self.starts, row) - 1
        return i >= 0 and row < self.ranges[i][1]

    def overlaps(self, first: int, end: int) -> bool:
        """Whether any of the rows first..end-1 is in a range."""
        i = bisect.bisect_right(self.starts, end - 1) - 1
        return end > first and i >= 0 and self.ranges[i][1] > first


class ImageSource:
    """Base class: subclasses implement `records()` and set `description`."""

    description: str = ""
    classes: list[str] | None = None

    def records(self) -> Iterator[RawRecord]:
        raise NotImplementedError

    def index(self) -> list[tuple[str, int | None]]:
        """All (key, label) pairs in source order; checks the source is non-empty and keys unique."""
        if getattr(self, "_index", None) is None:
            entries, seen = [], {}
            for r in self.records():
                if r.key in seen:
                    raise InputError(f"{r.origin}: duplicate key {r.key!r} (also in {seen[r.key]})")
                seen[r.key] = r.origin
                entries.append((r.key, r.label))
            if not entries:
                raise InputError(f"{self.description}: no images found")
            self._index = entries
        return self._index

    def records_of_rows(self, ranges: list[tuple[int, int]]) -> Iterator[tuple[int, RawRecord]]:
        """(row, record) for the rows in `ranges` (half-open, in order), reading no further than the last; a source
        that can reach a row without reading those before it reads only the parts that hold them."""
        wanted = RowRanges(ranges)
        for row, record in enumerate(self.records()):
            if row >= wanted.end:
                return
            if row in wanted:
                yield row, record

    def corpus_hash(self) -> str:
        """Identity of the corpus: its keys and labels in order."""
        h = hashlib.sha256()
        for key, label in self.index():
            h.update(f"{key}\t{'' if label is None else label}\n".encode())
        return h.hexdigest()

    def iter_images(self, strict: bool = False, skipped: list | None = None) -> Iterator[tuple[str, Image.Image, int | None]]:
        """Yield (key, RGB image, label); unreadable images are appended to `skipped` or raise if strict."""
        for r in self.records():
            try:
                yield r.key, decode_image(r), r.label
            except UnreadableImage as e:
                if strict:
                    raise InputError(str(e)) from None
                if skipped is not None:
                    skipped.append(e)


class FolderSource(ImageSource):
    """A folder of images; when every image sits in a first-level subfolder, those are the classes."""

    def __init__(self, root: Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"{self.root}: not a folder")
        self.description = str(self.root)
        self.files = sorted(
            (p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower().lstrip(".") in IMAGE_EXTS),
            key=lambda p: p.relative_to(self.root).as_posix(),
        )
        rel = [p.relative_to(self.root) for p in self.files]
        if rel and all(len(r.parts) == 2 for r in rel):
            self.classes = sorted({r.parts[0] for r in rel})
        self._class_index = {c: i for i, c in enumerate(self.classes or [])}

    def records(self) -> Iterator[RawRecord]:
        for path in self.files:
            rel = path.relative_to(self.root)
            label = self._class_index[rel.parts[0]] if self.classes else None
            yield RawRecord(rel.with_suffix("").as_posix(), label, str(path), path.read_bytes)


class WebDatasetSource(ImageSource):
    """WebDataset tar shards (`__key__`, an image field, optional `cls`), given as a brace pattern."""

    def __init__(self, pattern: str | list[str], classes: list[str] | None = None, description: str | None = None):
        self.urls = list(braceexpand.braceexpand(pattern)) if isinstance(pattern, str) else list(pattern)
        self.description = description or str(pattern)
        self.classes = classes
        for url in self.urls:
            if "://" not in url and not Path(url).is_file():
                raise InputError(f"{url}: no such shard (from {self.description})")

    def records(self) -> Iterator[RawRecord]:
        for url in self.urls:
            yield from self._shard_records(url)

    def index(self) -> list[tuple[str, int | None]]:
        """As ImageSource's, read once per process for local shards unchanged since (by size and mtime): indexing
        reads every tar header, 3 s for CIFAR-10's 50,000 images, and a sweep, its plan and its studies each ask."""
        if getattr(self, "_index", None) is None:
            stamp = _local_stamp(self.urls)
            if stamp in _INDEXES:
                self._index = _INDEXES[stamp]
            else:
                super().index()
                if stamp is not None:
                    _INDEXES[stamp] = self._index
        return self._index

    def find_records(self, wanted: set[str]) -> dict[str, RawRecord]:
        """The records of `wanted`, which read their bytes when asked, so a job's memory does not grow with its number
        of images: from a local uncompressed tar through an index of member offsets (made from the tar headers
        alone); from a compressed or remote shard, read through once with the wanted images spilled to a temporary
        file (`spill_file`) and read back by offset."""
        found: dict[str, RawRecord] = {}
        for url in self.urls:
            if _seekable_tar(url):
                found |= _indexed_tar_records(url, wanted, self.description)
            else:
                found |= self._spilled_records(url, wanted)
        return found

    def _spilled_records(self, url: str, wanted: set[str]) -> dict[str, RawRecord]:
        return spill_records(self._shard_records(url), wanted, url)

    def _shard_records(self, url: str) -> Iterator[RawRecord]:
        import webdataset as wds  # here: it imports torch, which naming a corpus's size does not need

        # Every process reads whole shards itself and picks its images by key, so webdataset must not
        # split shards between processes or loader workers.
        samples = iter(wds.WebDataset(url, shardshuffle=False, empty_check=False, nodesplitter=None, workersplitter=None))
        read = 0
        while True:
            try:
                sample = next(samples)
            except StopIteration:
                if _local_tar(url) and not _ends_as_tar(url):
                    raise InputError(f"{url}: the file ends early (truncated?) after {read} complete samples (it lacks "
                                     "tar's end-of-archive blocks)") from None
                return
            except Exception as e:  # webdataset raises tarfile/gzip/OS errors for a broken shard
                why = e.args[0] if isinstance(e.args[0:1] and e.args[0], str) else str(e)
                if _cut_off(e):
                    raise InputError(f"{url}: the file ends early (truncated?) after {read} complete samples "
                                     f"({type(e).__name__}: {why})") from None
                raise InputError(f"{url}: not a readable tar shard after {read} samples ({type(e).__name__}: {why})") \
                    from None
            read += 1
            yield self._record(url, sample)

    @staticmethod
    def _record(url: str, sample: dict) -> RawRecord:
        key = sample["__key__"]
        ext = next((e for e in IMAGE_EXTS if e in sample), None)
        label = None
        if "cls" in sample:
            try:
                label = int(sample["cls"].decode().strip())
            except (UnicodeDecodeError, ValueError):
                raise InputError(f"{url}: sample {key!r} has a cls field that is not an integer") from None
        if ext is None:
            fields = ", ".join(sorted(k for k in sample if not k.startswith("__"))) or "none"

            def read() -> bytes:
                raise OSError(f"no image field (fields: {fields})")
        else:
            data = sample[ext]
            read = lambda: data  # noqa: E731 - the bytes are already in memory
        return RawRecord(key, label, url, read)


class BuiltinSource(WebDatasetSource):
    """A data set shipped inside the package (see `scripts/make_cifar10_demo.py`)."""

    def __init__(self, name: str):
        if name not in BUILTINS:
            raise InputError(f"builtin:{name}: unknown built-in data set (available: {', '.join(sorted(BUILTINS))})")
        folder, split = BUILTINS[name]
        root = BUILTIN_ROOT / folder
        card = json.loads((root / "index.json").read_text())
        shards = card["splits"][split]["shards"]
        super().__init__([str(root / s["file"]) for s in shards], card["classes"], f"builtin:{name}")
        self.expected = {str(root / s["file"]): s["sha256"] for s in shards}

    def index(self) -> list[tuple[str, int | None]]:
        if getattr(self, "_index", None) is None:
            for path, sha in self.expected.items():
                if hashlib.sha256(Path(path).read_bytes()).hexdigest() != sha:
                    raise InputError(f"{path}: shipped shard is damaged (sha256 differs from index.json); reinstall")
        return super().index()


_INDEXES: dict[tuple, list[tuple[str, int | None]]] = {}


def _local_stamp(urls: list[str]) -> tuple | None:
    """What identifies local shards' contents short of reading them (None for a remote shard: not remembered)."""
    if any("://" in url for url in urls):
        return None
    stats = [os.stat(url) for url in urls]
    return tuple((os.path.abspath(url), st.st_size, st.st_mtime_ns) for url, st in zip(urls, stats))


# webdataset's rule: a sample's key is the member path up to the first dot of its file name, the rest its field
_KEY_FIELD = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")


_SPILL: Path | None = None


def spill_file() -> Path:
    """This process's spill file for images of compressed or remote shards (under TMPDIR), removed at exit."""
    global _SPILL
    if _SPILL is None or not _SPILL.exists():
        fd, name = tempfile.mkstemp(prefix="subset-distill-spill-", suffix=".bin")
        os.close(fd)
        _SPILL = Path(name)
        atexit.register(_SPILL.unlink, missing_ok=True)
    return _SPILL


def spill_records(records: Iterable[RawRecord], wanted: set[str], what: str) -> dict[str, RawRecord]:
    """The `wanted` records of a stream read through once, their images written to this process's spill file and
    read back from it by offset, so the records hold no bytes."""
    spill, out = spill_file(), {}
    try:
        with open(spill, "ab") as f:
            for r in records:
                if r.key not in wanted:
                    continue
                try:
                    data = r.read()
                except OSError:  # no image: the record says so when read, and holds no bytes
                    out[r.key] = r
                    continue
                offset = f.tell()
                f.write(data)
                out[r.key] = RawRecord(r.key, r.label, r.origin, functools.partial(_read_at, str(spill), offset, len(data)))
    except OSError as e:
        if is_disk_full(e):
            raise DiskFull(f"{spill}: the disk is full while spilling the images of {what} (set TMPDIR to a "
                           "folder with room for the subset's images)") from None
        raise
    return out


def _seekable_tar(url: str) -> bool:
    return "://" not in url and url.endswith(".tar") and Path(url).is_file()


GZ_TARS = (".tar.gz", ".tgz")


def _local_tar(url: str) -> bool:
    return "://" not in url and url.endswith(GZ_TARS + (".tar",)) and Path(url).is_file()


def _cut_off(error: Exception) -> bool:
    """Whether a tar or gzip reader's error says its file ended early."""
    return any(w in str(error) for w in ("empty header", "truncated", "unexpected end", "EOF", "end of data"))


def _ends_as_tar(path: str) -> bool:
    """Whether a local tar (or gzipped tar) ends with the two zero blocks every tar writer closes it with. Python's
    tarfile, and so webdataset, takes a file cut off inside a member's header for the archive's end: the samples
    after the cut would be lost unsaid. A tar cut off and then gzipped whole is such a file too."""
    if path.endswith(GZ_TARS):
        stat = Path(path).stat()
        return _gz_ends_as_tar(path, stat.st_size, stat.st_mtime_ns)
    size = Path(path).stat().st_size
    return size % 512 == 0 and size >= 1024 and not any(_read_at(path, size - 1024, 1024))


@functools.lru_cache(maxsize=4096)
def _gz_ends_as_tar(path: str, size: int, mtime_ns: int) -> bool:
    """The tar check of a gzipped tar, read through once (gzip cannot seek to its end); remembered per file version,
    as a job reads a shard more than once. A gzip stream cut off itself raises EOFError, said where it is read."""
    import gzip

    total, tail = 0, b""
    with gzip.open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            total, tail = total + len(chunk), (tail + chunk)[-1024:]
    return total % 512 == 0 and total >= 1024 and not any(tail)


def _read_at(path: str, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


def _indexed_tar_records(url: str, wanted: set[str], description: str) -> dict[str, RawRecord]:
    import tarfile

    fields: dict[str, dict[str, tuple[int, int]]] = {}
    try:
        with tarfile.open(url, "r:") as tar:
            for member in tar:  # headers only: the data is seeked over
                match = _KEY_FIELD.match(member.name) if member.isfile() else None
                if match and match.group(1) in wanted and not Path(member.name).name.startswith("__"):
                    fields.setdefault(match.group(1), {}).setdefault(match.group(2).lower(),
                                                                     (member.offset_data, member.size))
    except (tarfile.TarError, OSError, EOFError) as e:
        what = "the file ends early (truncated?)" if _cut_off(e) else "not a readable tar shard"
        raise InputError(f"{url}: {what} ({type(e).__name__}: {e}) (from {description})") from None
    if not _ends_as_tar(url):
        raise InputError(f"{url}: the file ends early (truncated?): it lacks tar's end-of-archive blocks (from "
                         f"{description})")
    out = {}
    for key, found in fields.items():
        label = None
        if "cls" in found:
            try:
                label = int(_read_at(url, *found["cls"]).decode().strip())
            except (UnicodeDecodeError, ValueError):
                raise InputError(f"{url}: sample {key!r} has a cls field that is not an integer") from None
        ext = next((e for e in IMAGE_EXTS if e in found), None)
        if ext is None:
            names = ", ".join(sorted(found)) or "none"

            def read(names=names) -> bytes:
                raise OSError(f"no image field (fields: {names})")
        else:
            read = functools.partial(_read_at, url, *found[ext])
        out[key] = RawRecord(key, label, url, read)
    return out


def open_source(spec: str | Path) -> ImageSource:
    """Resolve SRC as the command line takes it: builtin:NAME, hf:HUB_ID_OR_FOLDER[:SPLIT], a WebDataset pattern, or a
    folder."""
    spec = str(spec)
    if spec.startswith("builtin:"):
        return BuiltinSource(spec.removeprefix("builtin:"))
    if spec.startswith("hf:"):
        from .hf_source import open_hf_source  # imports datasets (pyarrow, pandas): only when asked for

        return open_hf_source(spec)
    if ".tar" in spec or "{" in spec:
        return WebDatasetSource(spec)
    if Path(spec).is_dir():
        return FolderSource(Path(spec))
    raise InputError(
        f"{spec}: not a folder of images, a WebDataset pattern (shards/train-{{000000..000009}}.tar), "
        f"a Hugging Face data set (hf:HUB_ID_OR_FOLDER[:SPLIT]) "
        f"or builtin:NAME (available: {', '.join('builtin:' + n for n in sorted(BUILTINS))})"
    )


def seeded_rows(count: int, samples: int | None, seed: int) -> np.ndarray:
    """Sorted rows of a seeded random sample of `samples` out of `count` (all rows when samples is None or larger)."""
    if samples is None or samples >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, samples, replace=False))


def collect_records(source: ImageSource, keys: list[str]) -> dict[str, RawRecord]:
    """The records of `keys`, found in one pass over the source.

    A folder's records, and those of local uncompressed tar shards, read their bytes when asked, so a job that
    reads its images shard by shard holds one shard's images at a time; a compressed or remote tar shard's records
    carry their bytes (held in memory: k images, not the corpus).
    """
    wanted = set(keys)
    finder = getattr(source, "find_records", None)
    found = finder(wanted) if finder else {r.key: r for r in source.records() if r.key in wanted}
    missing = [k for k in keys if k not in found]
    if missing:
        raise InputError(f"{source.description}: lacks {len(missing)} image(s) of the subset (first: {missing[0]!r})")
    return found
