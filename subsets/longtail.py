"""A long-tailed corpus made from a labelled one, to ask whether diverse selection pays where the data is skewed.

Web-scale corpora are long-tailed and redundant, which is the setting diversity-based selection is meant for; a
balanced benchmark such as CIFAR-10 is not. This keeps every class but thins class r (0 = the head, in class order)
to n_r = head * imbalance ** (-r / (C - 1)) images (rounded down), the exponential profile of CIFAR-10-LT (Cui et al., 2019), and
writes them, their bytes untouched, as WebDataset tar shards that every stage reads like any other corpus.
"""

from __future__ import annotations

import functools
import io
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import webdataset as wds
from PIL import Image, UnidentifiedImageError

from .errors import InputError
from .fileio import output_dir_atomic, refuse_to_replace
from .progress import progress_bar
from .provenance import environment
from .sources import ImageSource, RawRecord, UnreadableImage, collect_records, decode_image

RECORD = "longtail.json"
SHARD = "corpus-{:06d}.tar"
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif", "PPM": "ppm"}


@dataclass
class LongtailConfig:
    imbalance: float = 10.0  # the head class's images over the last class's
    head: int | None = None  # images kept of the head class (default: the smallest class's count)
    seed: int = 0  # which images of each class are kept
    shard_size: int = 10_000  # images per tar shard


def longtail_counts(classes: int, head: int, imbalance: float) -> list[int]:
    """n_r = head * imbalance^(-r/(C-1)), rounded down as CIFAR-10-LT's published counts are, at least 1."""
    if classes == 1:
        return [head]
    # the epsilon keeps an exact product (head / imbalance for the last class) from falling to the integer below
    return [max(1, int(head * (1 / imbalance) ** (r / (classes - 1)) + 1e-9)) for r in range(classes)]


def choose_keys(index: list[tuple[str, int | None]], config: LongtailConfig,
                origin: str) -> tuple[dict[int, list[str]], list[int]]:
    """For each class, its images in a seeded order, and how many of them the long tail keeps. Refuses what cannot
    give the profile: an unlabelled corpus, a class with no image, a head larger than a class can supply."""
    if any(label is None for _, label in index):
        raise InputError(f"{origin}: images without labels; a long-tailed corpus needs class subfolders or a `cls` field")
    labels = np.array([label for _, label in index])
    have = np.bincount(labels)  # images per class, classes 0..C-1
    if (have == 0).any():
        raise InputError(f"{origin}: class {int(np.flatnonzero(have == 0)[0])} has no image; classes must be 0..C-1")
    if not math.isfinite(config.imbalance) or config.imbalance < 1:
        raise InputError(f"imbalance must be a number >= 1 (the head class's images over the last's), not {config.imbalance}")
    head = int(have.min()) if config.head is None else config.head
    if head < 1:
        raise InputError(f"head must be a positive number of images, not {head}")
    want = longtail_counts(len(have), head, config.imbalance)
    short = [c for c in range(len(have)) if want[c] > have[c]]
    if short:
        c = short[0]
        raise InputError(f"{origin}: class {c} has {have[c]:,} images, fewer than the {want[c]:,} the profile asks of it "
                         f"(head {head:,}, imbalance {config.imbalance:g}); lower --head")
    rng = np.random.default_rng(config.seed)
    keys = np.array([key for key, _ in index], dtype=object)
    by_class = {c: keys[rng.permutation(np.flatnonzero(labels == c))].tolist() for c in range(len(have))}
    return by_class, want


def image_extension(data: bytes, record: RawRecord) -> str:
    """The file extension the bytes' own format calls for (the shard keeps them as they are)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format
    except (UnidentifiedImageError, OSError) as e:
        raise UnreadableImage(record.key, record.origin, str(e) or type(e).__name__) from None
    if fmt not in EXTENSIONS:
        raise UnreadableImage(record.key, record.origin, f"{fmt} images cannot be stored in a shard")
    return EXTENSIONS[fmt]


def make_longtail(source: ImageSource, out: Path, config: LongtailConfig = LongtailConfig(),
                  overwrite: bool = False) -> Path:
    """Write the long-tailed corpus into `out` (shards and longtail.json, all or nothing) and return the shard
    pattern to pass as a source. An unreadable image is skipped, listed, and the class's next image taken, so every
    class gets its count."""
    if config.shard_size < 1:
        raise InputError(f"shard size must be a positive number of images, not {config.shard_size}")
    refuse_to_replace(out, overwrite, RECORD, "long-tailed corpus")  # said before the images are read, not after
    index = source.index()
    by_class, want = choose_keys(index, config, source.description)
    for keys in by_class.values():
        bad = next((k for k in keys if "." in k.rsplit("/", 1)[-1]), None)
        if bad is not None:  # webdataset would split such a key at the dot into a shorter key and a field
            raise InputError(f"{source.description}: key {bad!r} has a dot in its file name, which a WebDataset "
                             "shard cannot keep; rename the file")
    records = collect_records(source, [k for keys in by_class.values() for k in keys])
    order = {key: i for i, (key, _) in enumerate(index)}
    kept, skipped = [], []
    with progress_bar() as bar:
        task = bar.add_task("reading the kept images", total=sum(want))
        for c, keys in by_class.items():
            taken = 0
            for key in keys:
                if taken == want[c]:
                    break
                read_once = functools.cache(records[key].read)  # checked and typed from one read of its bytes
                record = replace(records[key], read=read_once)
                try:
                    decode_image(record)
                    ext = image_extension(read_once(), record)
                except UnreadableImage as e:
                    skipped.append({"key": e.key, "reason": e.reason})
                    continue
                kept.append((order[key], key, c, ext))
                taken += 1
                bar.advance(task)
            if taken < want[c]:
                raise InputError(f"{source.description}: class {c} has only {taken:,} readable images of the "
                                 f"{want[c]:,} asked ({len(skipped):,} unreadable so far); lower --head")
    kept.sort()  # the source's own order, whatever the class
    with output_dir_atomic(out, overwrite, RECORD, "long-tailed corpus") as tmp:
        shards = []
        for s, start in enumerate(range(0, len(kept), config.shard_size)):
            name = SHARD.format(s)
            with wds.TarWriter(str(tmp / name), mtime=0) as sink:  # a fixed mtime: the same bytes on every run
                for _, key, c, ext in kept[start:start + config.shard_size]:
                    sink.write({"__key__": key, ext: records[key].read(), "cls": str(c).encode()})
            shards.append(name)
        counts = [0] * len(want)
        for _, _, c, _ in kept:
            counts[c] += 1
        record = {"source": source.description, "source_corpus_hash": source.corpus_hash(),
                  "classes": source.classes, "config": asdict(config), "counts": counts, "images": len(kept),
                  "skipped": skipped, "shards": shards, "environment": environment()}
        (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return Path(out) / shard_pattern(len(shards))


def shard_pattern(shards: int) -> str:
    """The brace pattern naming every shard, as `--source` takes it."""
    if shards == 1:
        return SHARD.format(0)
    return "corpus-{" + f"{0:06d}..{shards - 1:06d}" + "}.tar"
