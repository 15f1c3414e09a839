"""Hugging Face data sets as a source (hf:...): the same corpus as its folder through embedding, caching and the
training loader; row keys and unlabelled rows; every bad spec one line."""

import io
import sys

import datasets
import pytest
import torch
from PIL import Image

from distill.cached_views import CachedViews
from distill.data import resolve_source
from subsets.embed import EmbedConfig, embed_corpus
from subsets.errors import InputError
from subsets.manifest import read_manifest
from subsets.sources import open_source
from teachers import load_teacher
from teachers.cache import CacheConfig, cache_targets
from teachers.views import ViewPolicy

from .helpers import error_line, run_cli


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _dataset(columns: dict, features: dict) -> datasets.Dataset:
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


@pytest.fixture(scope="module")
def hf_copy(tmp_path_factory, image_folder):
    """The test corpus's folder as a Hugging Face DatasetDict saved to disk: its PNG bytes, its class subfolders as a
    ClassLabel and its keys in a column, with a test split beside it."""
    folder = open_source(image_folder)
    keys, images, labels = zip(*[(r.key, {"bytes": r.read(), "path": None}, r.label) for r in folder.records()])
    train = _dataset({"image": list(images), "label": list(labels), "key": list(keys)},
                     {"image": datasets.Image(), "label": datasets.ClassLabel(names=folder.classes),
                      "key": datasets.Value("string")})
    out = tmp_path_factory.mktemp("hf") / "copy"
    datasets.DatasetDict({"train": train, "test": train.select(range(10))}).save_to_disk(str(out))
    for i, rows in enumerate((range(0, 50), range(50, 90), range(90, 120))):  # the same rows in 3 files, to stream
        train.select(rows).to_parquet(str(out.parent / "parquet" / f"train-{i:05d}-of-00003.parquet"))
    return out


def _cache_equal_to_the_folders(source, folder, subset, tmp_path):
    """The first 16 of the subset cached from `source` and from its folder: byte-equal shards; the source's cache."""
    teacher = load_teacher("mobilenetv2_imagenet", resolution=32)
    config = CacheConfig(views=ViewPolicy(views=2, seed=5), batch_size=8, shard_size=8)
    ours = cache_targets(source, subset, teacher, tmp_path / "t-source", 16, config)
    theirs = cache_targets(folder, subset, teacher, tmp_path / "t-folder", 16, config)
    shards = sorted(p.name for p in theirs.glob("*.safetensors"))
    assert shards and all((ours / s).read_bytes() == (theirs / s).read_bytes() for s in shards)
    return ours


def test_an_hf_copy_of_a_folder_is_the_same_corpus_through_embedding_caching_and_the_loader(
        tmp_path, hf_copy, image_folder, subsets_dir, encoder):
    folder, hf = open_source(image_folder), open_source(f"hf:{hf_copy}:train?key=key")
    assert hf.description == f"hf:{hf_copy}:train?key=key" and hf.classes == folder.classes
    assert hf.index() == folder.index() and hf.corpus_hash() == folder.corpus_hash()
    reopened = open_source(hf.description)  # as a later job reopens the source meta.json names
    assert reopened.index() == hf.index()

    emb = embed_corpus(hf, encoder, tmp_path / "emb", EmbedConfig())
    shards = sorted(p.name for p in (subsets_dir / "emb").glob("emb-*.safetensors"))
    assert shards and all((emb / s).read_bytes() == (subsets_dir / "emb" / s).read_bytes() for s in shards)

    # A subset selected from the folder is cached, and trained on, from its Hugging Face copy.
    subset = read_manifest(subsets_dir / "kcenter")
    assert resolve_source(hf.description, subset).description == hf.description
    from_hf = _cache_equal_to_the_folders(hf, folder, subset, tmp_path)

    from teachers.cache import TargetCache

    cache = TargetCache(from_hf)
    views = {name: CachedViews(cache, src, subset, resolution=32, k=12) for name, src in (("hf", hf), ("folder", folder))}
    hf_batches = list(torch.utils.data.DataLoader(views["hf"], batch_size=5, num_workers=2))
    folder_batches = list(torch.utils.data.DataLoader(views["folder"], batch_size=5, num_workers=0))
    assert len(hf_batches) == len(folder_batches) == 5
    for a, b in zip(hf_batches, folder_batches):
        torch.testing.assert_close(a["image"], b["image"], atol=0, rtol=0)


def test_a_streamed_copy_is_the_same_corpus_and_caches_the_same_targets_through_its_spilled_images(
        tmp_path, hf_copy, image_folder, subsets_dir, encoder):
    folder, streamed = open_source(image_folder), open_source(f"hf:{hf_copy.parent / 'parquet'}?key=key&streaming=1")
    assert type(streamed).__name__ == "HFStreamingSource" and streamed.shards == 3
    assert streamed.description == f"hf:{hf_copy.parent / 'parquet'}:train?key=key&streaming=1"
    assert streamed.index() == folder.index() and streamed.classes == folder.classes
    emb = embed_corpus(streamed, encoder, tmp_path / "emb", EmbedConfig(shard_size=40))
    folder_emb = embed_corpus(folder, encoder, tmp_path / "emb-folder", EmbedConfig(shard_size=40))
    assert all((emb / s.name).read_bytes() == s.read_bytes() for s in folder_emb.glob("emb-*.safetensors"))
    subset = read_manifest(subsets_dir / "random")
    _cache_equal_to_the_folders(streamed, folder, subset, tmp_path)


def test_a_job_reads_only_the_streamed_files_that_hold_its_rows(hf_copy, image_folder, monkeypatch):
    import subsets.hf_source as hf_source

    streamed = open_source(f"hf:{hf_copy.parent / 'parquet'}?key=key&streaming=1")
    keys = [key for key, _ in streamed.index()]  # files of rows 0-49, 50-89 and 90-119
    read, shard = [], hf_source._shard

    def spy(stream, index, shards):
        for i, example in enumerate(shard(stream, index, shards)):
            if i == 0:
                read.append(index)
            yield example

    monkeypatch.setattr(hf_source, "_shard", spy)
    # an embedding job's process with rows 40-59 and 100-109: the three files hold some; one with 60-79: the second
    got = list(streamed.records_of_rows([(40, 60), (100, 110)]))
    assert [row for row, _ in got] == [*range(40, 60), *range(100, 110)] and read == [0, 1, 2]
    assert [r.key for _, r in got] == keys[40:60] + keys[100:110]
    read.clear()
    assert [row for row, _ in streamed.records_of_rows([(60, 80)])] == list(range(60, 80)) and read == [1]
    read.clear()  # a cache job's subset in the last file
    found = streamed.find_records({keys[95], keys[119]})
    assert read == [2] and sorted(found) == sorted([keys[95], keys[119]])
    want = {r.key: r.read() for r in open_source(image_folder).records() if r.key in found}
    assert {key: r.read() for key, r in found.items()} == want
    # a folder reads no further than the last row asked for: rows 0-8, the last of which ends it
    folder, pulled = open_source(image_folder), []
    records = folder.records
    folder.records = lambda: (pulled.append(r.key) or r for r in records())
    assert [row for row, _ in folder.records_of_rows([(3, 5), (7, 8)])] == [3, 4, 7] and len(pulled) == 9


def test_rows_are_keyed_by_number_unlabelled_rows_have_no_label_and_a_bad_image_is_skipped_by_key(tmp_path):
    red, green = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 6), (0, 255, 0))
    green.save(tmp_path / "green.png")
    rows = _dataset({"img": [{"bytes": _png(red), "path": None}, {"bytes": None, "path": str(tmp_path / "green.png")},
                             {"bytes": b"not an image", "path": None}, {"bytes": _png(red), "path": None}],
                     "label": [0, 1, 0, -1], "width": [8, 8, 8, 8], "raw": [_png(red), _png(green), b"", _png(green)]},
                    {"img": datasets.Image(), "label": datasets.ClassLabel(names=["red", "green"]),
                     "width": datasets.Value("int32"), "raw": datasets.Value("binary")})
    rows.to_parquet(str(tmp_path / "pq" / "train-00000-of-00001.parquet"))
    src = open_source(f"hf:{tmp_path / 'pq'}")  # a folder of parquet files, through load_dataset; its one split
    assert src.description == f"hf:{tmp_path / 'pq'}:train" and src.classes == ["red", "green"]
    assert src.index() == [("0", 0), ("1", 1), ("2", 0), ("3", None)]
    skipped = []
    got = [(key, image.size, label) for key, image, label in src.iter_images(skipped=skipped)]
    assert got == [("0", (8, 8), 0), ("1", (8, 6), 1), ("3", (8, 8), None)]
    assert [(e.key, e.reason) for e in skipped] == [("2", "not a recognised image format")]
    assert list(open_source(f"hf:{tmp_path / 'pq'}:train?label=width").index())[0] == ("0", 8)
    # encoded image bytes in a binary column (as webdataset's fields), read only when named
    raw = open_source(f"hf:{tmp_path / 'pq'}:train?image=raw")
    assert [(key, image.size) for key, image, _ in raw.iter_images(skipped=skipped)] == [("0", (8, 8)), ("1", (8, 6)),
                                                                                      ("3", (8, 6))]
    assert skipped[-1].key == "2" and skipped[-1].reason == "empty file"


def _hub_cache_holding(cache, hub_id: str, parquet_folder) -> None:
    """What loading `hub_id` online leaves in the datasets cache (`{owner}___{name}/{config}/{version}/{hash}/` with
    `{name}-{split}.arrow` files), made offline by preparing the parquet files under the Hub id's name."""
    import shutil

    datasets.load_dataset("parquet", data_dir=str(parquet_folder), cache_dir=str(cache / "prep"))
    prepared = next(p for p in (cache / "prep" / "parquet").glob("*/*/*") if p.is_dir())
    owner, name = hub_id.split("/")
    into = cache / f"{owner}___{name}" / "default" / "0.0.0" / prepared.name
    shutil.copytree(prepared, into)
    for arrow in into.glob("parquet-*.arrow"):
        arrow.rename(into / arrow.name.replace("parquet-", f"{name}-", 1))


def test_a_hub_id_is_read_from_the_hf_cache_offline(tmp_path, monkeypatch):
    rows = _dataset({"img": [{"bytes": _png(Image.new("RGB", (8, 8), (9, 9, 9 * i))), "path": None} for i in range(5)],
                     "label": [0, 1, 0, 1, 1]},
                    {"img": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    rows.to_parquet(str(tmp_path / "pq" / "train-00000-of-00001.parquet"))
    _hub_cache_holding(tmp_path / "cache", "someone/tiny", tmp_path / "pq")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")  # HF_HUB_OFFLINE=1: conftest
    for spec in ("hf:someone/tiny:train", "hf:someone/tiny"):  # its one split, found from the cache too
        src = open_source(spec)
        assert src.description == "hf:someone/tiny:train" and src.classes == ["a", "b"]
        assert src.index() == [(str(i), label) for i, label in enumerate([0, 1, 0, 1, 1])]
        assert [image.getpixel((0, 0)) for _, image, _ in src.iter_images(strict=True)] == [(9, 9, 9 * i) for i in range(5)]


def _bad(tmp_path, hf_copy, case):
    plain = _dataset({"pixels": [[1, 2]], "a": [0], "b": [1]},
                     {"pixels": datasets.Sequence(datasets.Value("int32")),
                      "a": datasets.ClassLabel(names=["x", "y"]), "b": datasets.ClassLabel(names=["x", "y"])})
    plain.save_to_disk(str(tmp_path / "plain"))
    two_labels = _dataset({"image": [None], "a": [0], "b": [1]},
                          {"image": datasets.Image(), "a": datasets.ClassLabel(names=["x", "y"]),
                           "b": datasets.ClassLabel(names=["x", "y"])})
    two_labels.save_to_disk(str(tmp_path / "two"))
    _dataset({"image": [None, None], "id": ["x", "x"]}, {"image": datasets.Image(), "id": datasets.Value("string")}
             ).save_to_disk(str(tmp_path / "dup"))
    return {
        "no image column": (f"hf:{tmp_path / 'plain'}", "no Image column (columns: pixels, a, b)"),
        "two label columns": (f"hf:{tmp_path / 'two'}", "several columns could be the label (a, b); name one with ?label=COLUMN"),
        "split of a lone data set": (f"hf:{tmp_path / 'two'}:train", "saved alone, without splits"),
        "no such split": (f"hf:{hf_copy}:validation", "no split 'validation' (splits: train, test)"),
        "several splits": (f"hf:{hf_copy}", f"has splits train, test; name one (hf:{hf_copy}:train)"),
        "no such column": (f"hf:{hf_copy}:train?key=id", "no column 'id' (columns: image, label, key)"),
        "unknown option": (f"hf:{hf_copy}:train?labels=key", "'labels=key' is not an option"),
        "duplicate keys": (f"hf:{tmp_path / 'dup'}?key=id", "duplicate key 'x' in column 'id'"),
        "not cached offline": ("hf:someone/not-in-the-cache:train", "cannot load this data set"),
        "streaming a saved folder": (f"hf:{hf_copy}:train?streaming=1", "read memory-mapped, without streaming"),
        "streaming=yes": (f"hf:{hf_copy}:train?streaming=yes", "give streaming=1 (or leave it out)"),
    }[case]


@pytest.mark.parametrize("case", ["no image column", "two label columns", "split of a lone data set", "no such split",
                                  "several splits", "no such column", "unknown option", "duplicate keys",
                                  "not cached offline", "streaming a saved folder", "streaming=yes"])
def test_a_bad_hf_source_is_one_line_naming_it_and_exit_2(tmp_path, hf_copy, case):
    spec, expect = _bad(tmp_path, hf_copy, case)
    with pytest.raises(InputError) as err:
        open_source(spec).index()
    assert str(err.value).startswith(spec.split("?")[0]) and expect in str(err.value) and "\n" not in str(err.value)
    if case in ("no such split", "not cached offline"):
        res = run_cli("subset", "embed", "--source", spec, "--out", tmp_path / "emb")
        assert res.returncode == 2 and expect in error_line(res)
        assert not (tmp_path / "emb").exists()


def test_without_the_datasets_library_an_hf_source_says_what_to_install(monkeypatch, hf_copy):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets raises ImportError
    with pytest.raises(InputError, match=r"needs the datasets library \(pip install 'subset-distill\[hf\]'\)"):
        open_source(f"hf:{hf_copy}:train")


def test_a_local_hf_data_set_named_two_ways_is_one_place_and_a_hub_id_stays_a_name(monkeypatch, hf_copy):
    from distill.run_dir import comparable_settings  # what tells a resumed run's settings from another run's

    monkeypatch.chdir(hf_copy.parent)
    relative, absolute = ({"source": f"hf:{name}:train?key=key"} for name in ("copy", hf_copy))
    assert comparable_settings(relative) == comparable_settings(absolute) == absolute
    assert comparable_settings({"source": "hf:copy:test?key=key"}) != comparable_settings(absolute)
    assert comparable_settings({"source": "hf:someone/data:train"}) == {"source": "hf:someone/data:train"}
