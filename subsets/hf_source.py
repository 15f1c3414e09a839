"""A Hugging Face data set as an image source.

    hf:NAME_OR_PATH[:SPLIT][?config=C&image=COLUMN&label=COLUMN&key=COLUMN]

NAME_OR_PATH is a Hub id (read through `datasets.load_dataset`, so from the HF cache when offline), a folder that
`save_to_disk` wrote (`load_from_disk`), or a folder of parquet / arrow / image files (`load_dataset` on the folder).
SPLIT may be left out when the data set has one split. The image column is the one `Image` feature and the label
the one `ClassLabel` (a label of -1, the Hub's mark of an unlabelled row, is no label); name them when there are
several. A row's key is its row number in the split, or the value of the `key` column (unique, e.g. ids or paths).

Rows are read undecoded (the Image feature's bytes, or the file its path names), row by row from the data set's
memory-mapped Arrow files, so a job decodes and holds only the rows it owns.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import InputError
from .sources import ImageSource, RawRecord

OPTIONS = ("config", "image", "label", "key")
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
    where = Path(spec.name)
    try:
        if _saved_to_disk(where):
            found = datasets.load_from_disk(str(where))
            if isinstance(found, datasets.Dataset):
                if spec.split:
                    raise InputError(f"{spec.text()}: {where} holds one data set saved alone, without splits; "
                                     f"name it without :{spec.split}")
                return found, spec
        else:
            split = spec.split or _only_split(spec, datasets.get_dataset_split_names(spec.name, spec.options.get("config")))
            return datasets.load_dataset(spec.name, spec.options.get("config"), split=split), replace(spec, split=split)
    except InputError:
        raise
    except Exception as e:  # datasets raises many kinds (not found, offline, bad files); the user needs the one line
        raise InputError(f"{spec.text()}: cannot load this data set ({_first_line(e)})") from None
    split = spec.split or _only_split(spec, list(found))
    if split not in found:
        raise InputError(f"{spec.text()}: no split {split!r} (splits: {', '.join(found)})")
    return found[split], replace(spec, split=split)


def _only_split(spec: HFSpec, splits: list[str]) -> str:
    if len(splits) != 1:
        raise InputError(f"{spec.text()}: has splits {', '.join(splits)}; name one (hf:{spec.name}:{splits[0]})")
    return splits[0]


def _column(spec: HFSpec, ds, option: str, kind: str, matches, found_alone=None) -> str | None:
    """The column the option names (checked to be of its kind), else the one column that `found_alone` picks out
    (none where it is not given: a key column is only ever named)."""
    if option in spec.options:
        name = spec.options[option]
        if name not in ds.features:
            raise InputError(f"{spec.text()}: no column {name!r} (columns: {', '.join(ds.features)})")
        if not matches(ds.features[name]):
            raise InputError(f"{spec.text()}: column {name!r} is {ds.features[name]}, not {kind}")
        return name
    found = [c for c, f in ds.features.items() if found_alone and found_alone(f)]
    if len(found) > 1:
        raise InputError(f"{spec.text()}: several columns could be the {option} ({', '.join(found)}); "
                         f"name one with ?{option}=COLUMN")
    return found[0] if found else None


def _read_row(images, column: str, row: int) -> bytes:
    value = images[row][column]
    if value is None:
        raise OSError("the row has no image")
    if value.get("bytes"):
        return value["bytes"]
    if value.get("path"):
        return Path(value["path"]).read_bytes()
    raise OSError("the row's image has neither bytes nor a path")


class HFDatasetSource(ImageSource):
    """Rows of one split of a Hugging Face data set (see the module's docstring for the spec)."""

    def __init__(self, spec: str):
        ds, self.spec = load_split(parse_spec(spec))  # first: it says what to install where datasets is missing
        import datasets

        self.description = self.spec.text()
        is_image = lambda f: isinstance(f, datasets.Image)
        is_class = lambda f: isinstance(f, datasets.ClassLabel)
        self.image_column = _column(self.spec, ds, "image", "an Image", is_image, is_image)
        if self.image_column is None:
            raise InputError(f"{self.description}: no Image column (columns: {', '.join(ds.features)}); "
                             "name one with ?image=COLUMN")
        self.label_column = _column(self.spec, ds, "label", "a ClassLabel or integer",
                                    lambda f: is_class(f) or _is_value(f, "int"), is_class)
        self.key_column = _column(self.spec, ds, "key", "a string or integer",
                                  lambda f: _is_value(f, "int") or _is_value(f, "string"))
        label_feature = ds.features[self.label_column] if self.label_column else None
        self.classes = list(label_feature.names) if isinstance(label_feature, datasets.ClassLabel) else None
        self.dataset = ds
        self.images = ds.select_columns([self.image_column]).cast_column(self.image_column, datasets.Image(decode=False))

    def index(self) -> list[tuple[str, int | None]]:
        """Keys and labels from their columns alone: no image is read."""
        if getattr(self, "_index", None) is None:
            n = len(self.dataset)
            keys = [str(k) for k in self.dataset[self.key_column]] if self.key_column else [str(r) for r in range(n)]
            labels = ([None if v is None or v < 0 else int(v) for v in self.dataset[self.label_column]]
                      if self.label_column else [None] * n)
            if not keys:
                raise InputError(f"{self.description}: no images found (the split is empty)")
            rows = {key: row for row, key in enumerate(keys)}
            if len(rows) != n:
                twice = next(k for row, k in enumerate(keys) if rows[k] != row)
                raise InputError(f"{self.description}: duplicate key {twice!r} in column {self.key_column!r}")
            self._index, self._rows = list(zip(keys, labels)), rows
        return self._index

    def records(self) -> Iterator[RawRecord]:
        for row in range(len(self.index())):
            yield self._record(row)

    def find_records(self, wanted: set[str]) -> dict[str, RawRecord]:
        self.index()
        return {key: self._record(self._rows[key]) for key in wanted if key in self._rows}

    def _record(self, row: int) -> RawRecord:
        key, label = self._index[row]
        return RawRecord(key, label, self.description, functools.partial(_read_row, self.images, self.image_column, row))


def _is_value(feature, kind: str) -> bool:
    import datasets

    return isinstance(feature, datasets.Value) and (kind in feature.dtype)
