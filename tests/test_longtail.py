"""A long-tailed corpus made from a labelled one: the profile, untouched bytes, a readable source, bad input."""

import json
import shutil

import numpy as np
import pytest

from subsets.longtail import LongtailConfig, longtail_counts, make_longtail
from subsets.sources import collect_records, open_source

from .helpers import ROOT, error_line, run_cli


def test_longtail_profile_is_cifar10_lt_exponential():
    assert longtail_counts(10, 5000, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert longtail_counts(3, 10, 1) == [10, 10, 10]


def test_a_long_tailed_corpus_keeps_the_profile_the_bytes_and_the_labels(image_folder, tmp_path):
    source = open_source(image_folder)
    have = np.bincount([label for _, label in source.index()])
    head = int(have.min())
    out = tmp_path / ("a-folder-with-a-long-name-" * 6) / "lt"  # the path alone is longer than a log line
    res = run_cli("subset", "longtail", "--source", image_folder, "--imbalance", 4, "--out", out, "--shard-size", 10)
    assert res.returncode == 0, res.stderr
    pattern = res.stdout.splitlines()[-1].split("--source ")[-1]  # printed whole, on its line
    lt = open_source(pattern)
    index = lt.index()
    want = longtail_counts(len(have), head, 4.0)
    assert np.bincount([label for _, label in index]).tolist() == want and want[0] == 4 * want[-1]
    record = json.loads((out / "longtail.json").read_text())
    assert record["counts"] == want and record["images"] == len(index) and len(record["shards"]) == -(-len(index) // 10)
    assert record["source_corpus_hash"] == source.corpus_hash()
    # each image is the source's own, its bytes untouched and its label kept, in the source's order
    mine, theirs = collect_records(lt, [k for k, _ in index]), collect_records(source, [k for k, _ in index])
    labels = dict(source.index())
    assert all(mine[k].read() == theirs[k].read() and label == labels[k] for k, label in index)
    order = [k for k, _ in source.index()]
    assert [k for k, _ in index] == sorted((k for k, _ in index), key=order.index)
    # the same command writes the same bytes; another seed keeps other images of the same profile
    again = make_longtail(source, tmp_path / "again", LongtailConfig(imbalance=4, shard_size=10))
    assert all((out / s).read_bytes() == (again.parent / s).read_bytes() for s in record["shards"])
    other = open_source(make_longtail(source, tmp_path / "other", LongtailConfig(imbalance=4, seed=1)))
    assert np.bincount([label for _, label in other.index()]).tolist() == want
    assert {k for k, _ in other.index()} != {k for k, _ in index}


def test_an_unreadable_image_is_skipped_listed_and_replaced(image_folder, tmp_path):
    folder = shutil.copytree(image_folder, tmp_path / "images")
    source = open_source(folder)
    head = int(np.bincount([label for _, label in source.index()]).min())
    chosen = open_source(make_longtail(source, tmp_path / "first", LongtailConfig(imbalance=2)))
    broken = next(k for k, label in chosen.index() if label == len(source.classes) - 1)  # a class with images to spare
    (folder / f"{broken}.png").write_bytes(b"not an image")
    lt = open_source(make_longtail(open_source(folder), tmp_path / "lt", LongtailConfig(imbalance=2)))
    assert np.bincount([label for _, label in lt.index()]).tolist() == longtail_counts(len(source.classes), head, 2.0)
    assert broken not in {k for k, _ in lt.index()}
    skipped = json.loads((tmp_path / "lt" / "longtail.json").read_text())["skipped"]
    assert [s["key"] for s in skipped] == [broken]


@pytest.mark.parametrize("case", ["unlabelled", "imbalance", "head", "exists", "not-ours"])
def test_bad_input_to_longtail_is_one_line_and_leaves_nothing(image_folder, tmp_path, case):
    source, args = image_folder, ["--imbalance", 10]
    if case == "unlabelled":
        source = tmp_path / "flat"
        source.mkdir()
        for p in list(image_folder.rglob("*.png"))[:5]:
            shutil.copy(p, source / p.name)
    elif case == "imbalance":
        args = ["--imbalance", 0.5]
    elif case == "head":
        args += ["--head", 1000]
    else:
        (tmp_path / "lt").mkdir()
        (tmp_path / "lt" / "notes.txt").write_text("mine")
        args += ["--overwrite"] if case == "not-ours" else []  # replaces an earlier long-tailed corpus only
    res = run_cli("subset", "longtail", "--source", source, "--out", tmp_path / "lt", *args)
    line = error_line(res)
    assert res.returncode == 2
    assert {"unlabelled": "images without labels", "imbalance": "imbalance must be a number >= 1",
            "head": "fewer than the 1,000 the profile asks of it", "exists": "already exists",
            "not-ours": "--overwrite replaces an earlier long-tailed corpus only"}[case] in line
    if case in ("exists", "not-ours"):
        assert (tmp_path / "lt" / "notes.txt").read_text() == "mine"
    else:
        assert not (tmp_path / "lt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".lt.")]


def test_subset_show_prints_how_evenly_each_subset_spreads_over_the_classes(subsets_dir, image_folder, tmp_path):
    from subsets.manifest import read_manifest

    res = run_cli("subset", "show", subsets_dir / "random", subsets_dir / "kcenter", "--out", tmp_path / "cov.png")
    assert res.returncode == 0, res.stderr
    assert "balance (higher is better)" in res.stdout and (tmp_path / "cov.png").exists()
    labels = dict(open_source(image_folder).index())
    classes = len(set(labels.values()))
    for row in read_manifest(subsets_dir / "random").meta["coverage"]:
        counts = np.bincount([labels[k] for k in read_manifest(subsets_dir / "random").keys[:row["k"]]],
                             minlength=classes)
        p = counts[counts > 0] / counts.sum()
        entropy = -(p * np.log(p)).sum() / np.log(classes)  # 1 when every class has the same count
        assert row["label_balance"] == pytest.approx(entropy)
        assert f"{entropy:.3f}" in res.stdout


def test_a_long_tailed_corpus_gets_class_balanced_subsets_and_an_unlabelled_one_is_refused_by_the_sweep(
        image_folder, tmp_path, encoder):
    from distill.sweep import SweepConfig
    from subsets.embed import EmbedConfig, embed_corpus
    from subsets.errors import InputError
    from subsets.manifest import read_manifest

    lt = open_source(make_longtail(open_source(image_folder), tmp_path / "lt", LongtailConfig(imbalance=4)))
    emb = embed_corpus(lt, encoder, tmp_path / "emb", EmbedConfig())
    res = run_cli("subset", "select", "--embeddings", emb, "--method", "class-balanced", "--k-max", 30, "--out",
                  tmp_path / "cb")
    assert res.returncode == 0, res.stderr
    labels = dict(lt.index())
    counts = np.bincount([labels[k] for k in read_manifest(tmp_path / "cb").keys], minlength=10)
    sizes = np.bincount(list(labels.values()), minlength=10)
    assert sizes[0] >= 4 * sizes[-1] and counts.sum() == 30
    open_ = counts < sizes  # the skew gone: no class with images left is more than one behind another
    assert counts[open_].min() >= counts.max() - 1
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in list(image_folder.rglob("*.png"))[:30]:
        shutil.copy(p, flat / p.name)
    with pytest.raises(InputError, match=f"method class-balanced reads the corpus's labels, and {flat} has images"):
        SweepConfig(source=str(flat), methods=["random", "class-balanced"], ks=[10]).check()


def test_the_long_tailed_studies_load_from_the_corpus_their_first_command_makes(tmp_path, monkeypatch):
    from distill.demo import DemoConfig
    from distill.sweep import SweepConfig, planned_runs

    study = (ROOT / "studies" / "cifar10-longtail.yaml").read_text()
    command = next(line.strip("# ").split("distill ", 1)[1] for line in study.splitlines() if "subset longtail" in line)
    monkeypatch.chdir(tmp_path)  # the sweep files name the corpus relative to where they are run
    res = run_cli(*command.split())
    assert res.returncode == 0, res.stderr
    assert "airplane 1,000, automobile 716" in res.stdout and "truck 50" in res.stdout and "3,401 images" in res.stdout
    longtail = SweepConfig.load(ROOT / "studies" / "cifar10-longtail.yaml")
    demo = DemoConfig()
    assert longtail.train == demo.train and longtail.corpus_size == 3401
    assert all(longtail.steps_by_k[k] == steps for k, steps in demo.steps_by_k.items() if k in longtail.ks)
    assert len(planned_runs(longtail)) == 3 * (5 * 3 + 1)
    budget = SweepConfig.load(ROOT / "studies" / "cifar10-longtail-budget.yaml")
    assert (budget.train, budget.source, budget.seeds) == (longtail.train, longtail.source, longtail.seeds)
    assert [r["train"] for r in budget.recipes] == [{"steps": 3 * longtail.steps_by_k[1000]}]
    assert budget.methods == ["random", "class-balanced"] and len(planned_runs(budget)) == 3 * 3
    # the resampled k-means study runs into the long-tail study's folder: the same settings, so every run is shared
    resampled = SweepConfig.load(ROOT / "studies" / "cifar10-longtail-resampled.yaml")
    same = ("out", "source", "encoder", "seeds", "teacher", "teacher_resolution", "teacher_layers", "views", "train",
            "eval", "baseline")
    assert [getattr(resampled, f) for f in same] == [getattr(longtail, f) for f in same]
    assert all(resampled.steps_by_k[k] == longtail.steps_by_k[k] for k in resampled.ks)
    assert set(resampled.methods) - set(longtail.methods) == {"kmeans-resampled"}
    assert len(planned_runs(resampled)) == 4 * 3 * 3
