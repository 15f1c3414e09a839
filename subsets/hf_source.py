"""A Hugging Face data set as an image source.

    hf:NAME_OR_PATH[:SPLIT][?config=C&image=COLUMN&label=COLUMN&key=COLUMN&streaming=1]

NAME_OR_PATH is a Hub id (read through `datasets.load_dataset`, so from the HF cache when offline), a folder that
`save_to_disk` wrote (`load_from_disk`), or a folder of parquet / arrow / image files (`load_dataset` on the folder).
SPLIT may be left out when the data set has one split. The image column is the one `Image` feature and the label
the one `ClassLabel` (a label of -1, the Hub's mark of an unlabelled row, is no label); name them when there are
several. A row's key is its row number in the split, or the value of the `key` column (unique, e.g. ids or paths).

Rows are read undecoded (the Image feature's bytes, or the file its path names), row by row from the data set's
memory-mapped Arrow files, so a job decodes and holds only the rows it owns. With `streaming=1` nothing is downloaded
or converted up front (`load_dataset(..., streaming=True)`): each pass reads the stream, as a `.tar.gz` shard is
read: listing the keys is one pass, a job's own rows another, their images spilled to a temporary file.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import InputError
from .sources import ImageSource, RawRecord, RowRanges, spill_records

OPTIONS = ("config", "image", "label", "key", "streaming")
INSTALL = "pip install 'subset-distill[hf]'"


@dataclass(frozen=True)
class HFSpec:
    name: str
    split: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        """The spec as `open_source` takes it back: stored in meta.json, so a later job reopens the same rows."""
        query = "&".join(f"{k}={self.options[k]}" for k in OPTIONS if k in self.options)
        return f"hf:{self.name}" + (f":{self.split}" if self.split else "") + (f"?{query}" if query else "")


def parse_spec(spec: str) -> HFSpec:
    body, _, query = spec.removeprefix("hf:").partition("?")
    options = {}
    for part in filter(None, query.split("&")):
        name, eq, value = part.partition("=")
        if name not in OPTIONS or not eq or not value:
            raise InputError(f"{spec}: {part!r} is not an option (options: {', '.join(o + '=...' for o in OPTIONS)})")
        options[name] = value
    head, colon, tail = body.rpartition(":")
    name, split = (head, tail) if colon and head and tail and "/" not in tail else (body, None)
    if not name:
        raise InputError(f"{spec}: names no data set (hf:HUB_ID_OR_FOLDER[:SPLIT])")
    return HFSpec(name, split, options)


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _saved_to_disk(path: Path) -> bool:
    return path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file())


def load_split(spec: HFSpec):
    """The split's `datasets.Dataset` and the spec with its split named; every failure is one InputError line."""
    try:
        import datasets
    except ImportError:
        raise InputError(f"{spec.text()}: reading a Hugging Face data set needs the datasets library ({INSTALL})") from None
    where, streaming = Path(spec.name), _streaming(spec)
    try:
        if _saved_to_disk(where):
            if streaming:
                raise InputError(f"{spec.text()}: {where} was written by save_to_disk and is read memory-mapped, "
                                 "without streaming; drop streaming=1")
            found = datasets.load_from_disk(str(where))
            if isinstance(found, datasets.Dataset):
                if spec.split:
                    raise InputError(f"{spec.text()}: {where} holds one data set saved alone, without splits; "
                                     f"name it without :{spec.split}")
                return found, spec
        else:
            split = spec.split or _only_split(spec, datasets.get_dataset_split_names(spec.name, spec.options.get("config")))
            return (datasets.load_dataset(spec.name, spec.options.get("config"), split=split, streaming=streaming),
                    replace(spec, split=split))
    except InputError:
        raise
    except Exception as e:  # datasets raises many kinds (not found, offline, bad files); the user needs the one line
        raise InputError(f"{spec.text()}: cannot load this data set ({_first_line(e)})") from None
    split = spec.split or _only_split(spec, list(found))
    if split not in found:
        raise InputError(f"{spec.text()}: no split {split!r} (splits: {', '.join(found)})")
    return found[split], replace(spec, split=split)


def _streaming(spec: HFSpec) -> bool:
    value = spec.options.get("streaming", "0")
    if value not in ("0", "1"):
        raise InputError(f"{spec.text()}: streaming={value}: give streaming=1 (or leave it out)")
    return value == "1"


def _only_split(spec: HFSpec, splits: list[str]) -> str:
    if len(splits) != 1:
        raise InputError(f"{spec.text()}: has splits {', '.join(splits)}; name one (hf:{spec.name}:{splits[0]})")
    return splits[0]


def _column(spec: HFSpec, features, option: str, kind: str, matches, found_alone=None) -> str | None:
    """The column the option names (checked to be of its kind), else the one column that `found_alone` picks out
    (none where it is not given: a key column is only ever named)."""
    if option in spec.options:
        name = spec.options[option]
        if name not in features:
            raise InputError(f"{spec.text()}: no column {name!r} (columns: {', '.join(features)})")
        if not matches(features[name]):
            raise InputError(f"{spec.text()}: column {name!r} is {features[name]}, not {kind}")
        return name
    found = [c for c, f in features.items() if found_alone and found_alone(f)]
    if len(found) > 1:
        raise InputError(f"{spec.text()}: several columns could be the {option} ({', '.join(found)}); "
                         f"name one with ?{option}=COLUMN")
    return found[0] if found else None


def _read_row(images, column: str, row: int) -> bytes:
    return _image_bytes(images[row][column])


def _undecoded(ds, columns: HFColumns):
    """The data set with its Image column read as stored (bytes or path) rather than decoded by datasets."""
    import datasets

    if isinstance(columns.image_feature, datasets.Image):
        return ds.cast_column(columns.image, datasets.Image(decode=False))
    return ds


def _image_bytes(value: dict | bytes | None) -> bytes:
    """An undecoded image's bytes: a binary column's value, or an Image's stored bytes or the file its path names."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if value is None:
        raise OSError("the row has no image")
    if value.get("bytes"):
        return value["bytes"]
    if value.get("path"):
        return Path(value["path"]).read_bytes()
    raise OSError("the row's image has neither bytes nor a path")


def open_hf_source(spec: str) -> ImageSource:
    """The source an hf: spec names: memory-mapped rows, or a stream with streaming=1."""
    ds, parsed = load_split(parse_spec(spec))  # first: it says what to install where datasets is missing
    import datasets

    if isinstance(ds, datasets.IterableDataset):
        return HFStreamingSource(parsed, ds)
    return HFDatasetSource(parsed, ds)


class HFColumns:
    """Which columns hold a data set's images, labels and keys, and its class names."""

    def __init__(self, spec: HFSpec, features):
        import datasets

        description = spec.text()
        if features is None:
            raise InputError(f"{description}: the data set does not say its columns' types; name them in a "
                             "dataset card or load it without streaming")
        is_image = lambda f: isinstance(f, datasets.Image)
        is_class = lambda f: isinstance(f, datasets.ClassLabel)
        self.image = _column(spec, features, "image", "an Image or binary", lambda f: is_image(f) or _is_value(f, "binary"),
                             is_image)  # a binary column (encoded image bytes, as webdataset's) only when named
        if self.image is None:
            raise InputError(f"{description}: no Image column (columns: {', '.join(features)}); "
                             "name one with ?image=COLUMN")
        self.image_feature = features[self.image]
        self.label = _column(spec, features, "label", "a ClassLabel or integer",
                             lambda f: is_class(f) or _is_value(f, "int"), is_class)
        self.key = _column(spec, features, "key", "a string or integer",
                           lambda f: _is_value(f, "int") or _is_value(f, "string"))
        self.classes = list(features[self.label].names) if self.label and is_class(features[self.label]) else None

    def label_of(self, value) -> int | None:
        return None if value is None or value < 0 else int(value)  # -1: the Hub's unlabelled row

    def key_and_label(self, example: dict, row: int) -> tuple[str, int | None]:
        """A streamed row's key (its key column's value, else its row number) and label."""
        key = str(example[self.key]) if self.key else str(row)
        return key, self.label_of(example[self.label]) if self.label else None

    def keys_and_labels(self, description: str, keys: list[str], labels: list) -> tuple[list, dict[str, int]]:
        """(key, label) pairs and each key's row; one line for an empty split or a key given twice."""
        if not keys:
            raise InputError(f"{description}: no images found (the split is empty)")
        rows = {key: row for row, key in enumerate(keys)}
        if len(rows) != len(keys):
            twice = next(k for row, k in enumerate(keys) if rows[k] != row)
            raise InputError(f"{description}: duplicate key {twice!r} in column {self.key!r}")
        return list(zip(keys, labels)), rows


class HFDatasetSource(ImageSource):
    """Rows of one split of a Hugging Face data set, read from its memory-mapped Arrow files."""

    def __init__(self, spec: HFSpec, ds):
        self.description, self.dataset = spec.text(), ds
        self.columns = HFColumns(spec, ds.features)
        self.classes = self.columns.classes
        self.images = _undecoded(ds.select_columns([self.columns.image]), self.columns)

    def index(self) -> list[tuple[str, int | None]]:
        """Keys and labels from their columns alone: no image is read."""
        if getattr(self, "_index", None) is None:
            n, c = len(self.dataset), self.columns
            keys = [str(k) for k in self.dataset[c.key]] if c.key else [str(r) for r in range(n)]
            labels = [c.label_of(v) for v in self.dataset[c.label]] if c.label else [None] * n
            self._index, self._rows = c.keys_and_labels(self.description, keys, labels)
        return self._index

    def records(self) -> Iterator[RawRecord]:
        for row in range(len(self.index())):
            yield self._record(row)

    def find_records(self, wanted: set[str]) -> dict[str, RawRecord]:
        self.index()
        return {key: self._record(self._rows[key]) for key in wanted if key in self._rows}

    def records_of_rows(self, ranges: list[tuple[int, int]]) -> Iterator[tuple[int, RawRecord]]:
        self.index()
        for a, b in sorted(ranges):
            yield from ((row, self._record(row)) for row in range(a, b))

    def _record(self, row: int) -> RawRecord:
        key, label = self._index[row]
        return RawRecord(key, label, self.description, functools.partial(_read_row, self.images, self.columns.image, row))


class HFStreamingSource(ImageSource):
    """Rows of one split streamed (streaming=1): from the Hub or data files, with nothing prepared up front.

    The stream is read data shard by data shard (its files, in order), so that a job that needs some rows reads the
    shards that hold them and no other: each process of an embedding job its own rows, a cache job its subset's.
    """

    def __init__(self, spec: HFSpec, ds):
        self.description = spec.text()
        self.columns = HFColumns(spec, ds.features)
        self.classes = self.columns.classes
        c = self.columns
        self.stream = _undecoded(ds.select_columns([name for name in (c.image, c.label, c.key) if name]), c)
        self.labels_stream = ds.select_columns([name for name in (c.label, c.key) if name]) if c.label or c.key else None
        self.shards = ds.num_shards if hasattr(ds, "shard") else 1  # IterableDataset.shard: datasets 3.2 on

    def index(self) -> list[tuple[str, int | None]]:
        """One pass over the stream; where there are labels or keys, over their columns alone."""
        if getattr(self, "_index", None) is None:
            stream = self.labels_stream if self.labels_stream is not None else self.stream
            pairs, self._starts = [], []  # the first row of each shard, and the end
            for shard in range(self.shards):
                self._starts.append(len(pairs))
                pairs.extend(self.columns.key_and_label(example, len(pairs) + i)
                             for i, example in enumerate(_shard(stream, shard, self.shards)))
            self._starts.append(len(pairs))
            self._index, self._rows = self.columns.keys_and_labels(self.description, [k for k, _ in pairs],
                                                                   [lab for _, lab in pairs])
        return self._index

    def records(self) -> Iterator[RawRecord]:
        row = 0
        for shard in range(self.shards):
            for example in _shard(self.stream, shard, self.shards):
                yield self._record(example, row)
                row += 1

    def records_of_rows(self, ranges: list[tuple[int, int]]) -> Iterator[tuple[int, RawRecord]]:
        self.index()
        wanted = RowRanges(ranges)
        for shard in range(self.shards):
            first, end = self._starts[shard], self._starts[shard + 1]
            if wanted.overlaps(first, end):
                for row, example in enumerate(_shard(self.stream, shard, self.shards), start=first):
                    if row >= wanted.end:
                        return
                    if row in wanted:
                        yield row, self._record(example, row)

    def find_records(self, wanted: set[str]) -> dict[str, RawRecord]:
        self.index()
        rows = sorted(self._rows[key] for key in wanted if key in self._rows)
        return spill_records((r for _, r in self.records_of_rows([(row, row + 1) for row in rows])), wanted,
                             self.description)

    def _record(self, example: dict, row: int) -> RawRecord:
        key, label = self.columns.key_and_label(example, row)
        return RawRecord(key, label, self.description, functools.partial(_image_bytes, example[self.columns.image]))


def _shard(stream, shard: int, shards: int):
    """One data shard of a stream (a file, for data files): the shards in order are the whole stream."""
    return stream.shard(num_shards=shards, index=shard) if shards > 1 else stream


def _is_value(feature, kind: str) -> bool:
    import datasets

    return isinstance(feature, datasets.Value) and (kind in feature.dtype)
