"""Selection methods: exactness, nesting, coverage and balance."""

import re
from dataclasses import replace

import numpy as np
import pytest

from subsets import select
from subsets.coverage import coverage_curve
from subsets.make_subset import SelectConfig, make_subset

from .helpers import clustered, unit, write_embeddings


@pytest.mark.parametrize("batch", [1, 7, 64])
@pytest.mark.parametrize("seed", [0, 7])
def test_kcenter_equals_bruteforce_farthest_point(batch, seed):
    x = unit(np.random.default_rng(seed).standard_normal((400, 24)))
    got = select.kcenter_greedy(x, 120, seed=seed, batch=batch)
    np.testing.assert_array_equal(got, select.kcenter_reference(x, 120, seed=seed))


def test_kcenter_batched_updates_are_exact_on_clustered_data():
    # Clustered data makes many stale bounds at the top: the picks must still be the plain ones.
    x, _ = clustered(3000, 32, centers=20, spread=0.1, seed=1)
    np.testing.assert_array_equal(select.kcenter_greedy(x, 300, seed=3),
                                  select.kcenter_greedy(x, 300, seed=3, batch=1))


def test_kcenter_with_exact_duplicates_never_repeats():
    x = unit(np.repeat(np.random.default_rng(0).standard_normal((5, 8)), 4, axis=0))
    order = select.kcenter_greedy(x, 20)
    assert sorted(order) == list(range(20))


@pytest.mark.parametrize("method", select.METHODS)
def test_every_prefix_is_a_nested_subset_without_repeats(tmp_path, method):
    x, labels = clustered(1500, 16, centers=12, seed=2)
    emb = write_embeddings(tmp_path / "emb", x, labels)
    small = make_subset(emb, tmp_path / "small", SelectConfig(method=method, k_max=100, seed=5, clusters=[60, 8]))
    big = make_subset(emb, tmp_path / "big", SelectConfig(method=method, k_max=600, seed=5, clusters=[60, 8]))
    assert len(np.unique(big.order)) == 600 and big.order.min() >= 0 and big.order.max() < 1500
    # The k-subset of a long ordering is the ordering for k: one selection serves every k.
    np.testing.assert_array_equal(small.order, big.order[:100])
    assert big.keys[:100] == small.keys
    for k in (1, 10, 99, 600):
        order_k, keys_k = big.first(k)
        assert set(order_k) <= set(big.order[: k + 1]) and len(set(keys_k)) == k


def test_kcenter_covers_clustered_data_better_than_random():
    x, _ = clustered(5000, 32, centers=40, spread=0.08, seed=3, sizes=np.geomspace(400, 5, 40).astype(int))
    ks = [40, 100, 300]
    kc = coverage_curve(x, select.kcenter_greedy(x, 300, seed=0), ks)
    for seed in range(3):
        rnd = coverage_curve(x, select.random_order(len(x), 300, seed), ks)
        for a, b in zip(kc, rnd):
            assert a["max_dist"] < b["max_dist"], (a, b)


def test_the_coverage_search_on_a_torch_device_gives_faiss_distances_in_any_block_size():
    """`--device cuda` runs the report's nearest-pick search as torch products, a block of picks at a time (torch's
    CPU device stands in for the GPU here)."""
    import torch

    from subsets.coverage import _device_distances, _faiss_distances

    x, _ = clustered(3000, 32, centers=20, seed=5)
    x = x.astype(np.float32)
    segments = [x[:10], x[10:100], x[100:700]]
    chunk = x[700:]
    expected = list(_faiss_distances(segments)(chunk))
    for block in (7, 64, 32_768):
        got = list(_device_distances(segments, torch.device("cpu"), block=block)(chunk))
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("within", ["nearest", "random"])  # kmeans and kmeans-random
def test_balanced_kmeans_prefixes_are_balanced_across_clusters(within):
    # Very unequal blob sizes: a random prefix is dominated by the big blobs, a balanced one is not.
    sizes = np.array([1200, 600, 300, 150, 80, 40])
    x, _ = clustered(sizes.sum(), 16, centers=6, spread=0.03, seed=4, sizes=sizes)
    order, tree = select.kmeans_balanced(x, len(x), seed=0, clusters=[48, 6], within=within)
    top = tree.top_cluster_of_rows()
    n_top, smallest = top.max() + 1, np.bincount(top).min()
    tolerance = 1  # round-robin: clusters differ by at most one pick until the smallest runs out
    for m in range(1, n_top * smallest + 1):
        counts = np.bincount(top[order[:m]], minlength=n_top)
        assert counts.max() - counts.min() <= tolerance, (m, counts)
    rnd = np.bincount(top[select.random_order(len(x), 60, 0)], minlength=n_top)
    assert rnd.max() - rnd.min() > 10 * tolerance  # the test data is unbalanced enough to tell


def test_resampling_moves_k_means_centroids_off_a_dense_blob_toward_the_sparse_rest():
    # ssl-data-curation's claim: k-means spends its centroids on dense regions; k-means again on an equal share of
    # each cluster spreads them over the support. 5,000 images in one tight blob, 500 spread over the sphere.
    rng = np.random.default_rng(0)
    center = unit(rng.standard_normal((1, 8)))
    x = np.vstack([unit(center + 0.05 * rng.standard_normal((5000, 8))), unit(rng.standard_normal((500, 8)))])
    for seed in range(3):
        on_blob = [int((unit(select.resampled_kmeans(x, 50, seed, 20, steps)[0]) @ center[0] > 0.98).sum())
                   for steps in (0, 10)]
        assert on_blob[1] <= on_blob[0] - 4, on_blob  # measured: 35-37 of 50 without, 28-30 with


def test_a_resampling_step_clusters_the_rows_nearest_each_centroid_an_equal_number_from_each():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 0, 1])
    distance = np.array([4.0, 1.0, 3.0, 1.0, 2.0, 5.0, 9.0, 0.5, 2.0])
    # cluster 0: rows 7 (0.5), 1 and 3 (1.0: the lower row first); cluster 1: rows 4, 8 (2.0); cluster 2: row 6
    np.testing.assert_array_equal(select.nearest_per_cluster(labels, distance, 2), [1, 4, 6, 7, 8])
    assert select.resample_size(3401, 500) == 3 and select.resample_size(500, 22) == 11
    assert select.resample_size(500, 300) == 1  # below 2: the level is not resampled


def test_kmeans_resampled_is_kmeans_without_its_steps_and_records_them(tmp_path):
    x, labels = clustered(1500, 16, centers=12, seed=2, sizes=np.geomspace(600, 20, 12).astype(int))
    emb = write_embeddings(tmp_path / "emb", x, labels)
    cfg = SelectConfig(method="kmeans", k_max=300, seed=1, clusters=[60, 8])
    plain = make_subset(emb, tmp_path / "plain", cfg)
    none = make_subset(emb, tmp_path / "none", replace(cfg, method="kmeans-resampled", resample_steps=0))
    ten = make_subset(emb, tmp_path / "ten", replace(cfg, method="kmeans-resampled"))
    np.testing.assert_array_equal(none.order, plain.order)
    assert not np.array_equal(ten.order, plain.order)
    assert ten.meta["params"]["resample_steps"] == 10 and ten.meta["clusters_used"] == [60, 8]


def test_dedup_removes_planted_near_duplicates_and_keeps_one_of_each():
    rng = np.random.default_rng(5)
    base = unit(rng.standard_normal((300, 32)))
    planted = [3, 50, 51, 200]
    copies = unit(base[planted] + 0.002 * rng.standard_normal((4, 32)))
    x = np.vstack([base, copies, copies[:1] + 0.001])  # row 3 has two near-copies
    keep = select.dedup(unit(x), threshold=0.99)
    assert len(keep) == 300
    np.testing.assert_array_equal(keep, np.arange(300))  # the first of each group stays


def test_dedup_runs_before_selection(tmp_path):
    x = unit(np.random.default_rng(6).standard_normal((200, 16)))
    x = np.vstack([x, x[:50] + 1e-4])
    emb = write_embeddings(tmp_path / "emb", x)
    m = make_subset(emb, tmp_path / "sub", SelectConfig(method="kcenter", k_max=200, dedup=0.999))
    assert m.meta["dedup"] == {"threshold": 0.999, "kept": 200, "removed": 50}
    assert m.order.max() < 200  # the later copies never get picked


def _first_of_each_cluster(order: np.ndarray, labels: np.ndarray) -> dict[int, int]:
    first = {}
    for row in order:
        first.setdefault(int(labels[row]), int(row))
    return first


def test_kmeans_takes_each_clusters_most_typical_image_first_and_kmeans_random_does_not():
    x, _ = clustered(2000, 16, centers=10, spread=0.1, seed=6)
    nearest, tree = select.kmeans_balanced(x, len(x), seed=1, clusters=[40, 6], within="nearest")
    leaf, dist = tree.levels[0], tree.distance
    for c, row in _first_of_each_cluster(nearest, leaf).items():
        assert dist[row] == dist[leaf == c].min()
    rnd, tree = select.kmeans_balanced(x, len(x), seed=1, clusters=[40, 6], within="random")
    firsts = _first_of_each_cluster(rnd, tree.levels[0])
    hits = sum(tree.distance[row] == tree.distance[tree.levels[0] == c].min() for c, row in firsts.items())
    assert hits < len(firsts) / 2  # random within clusters: the nearest comes first only by chance


def test_prototypes_come_nearest_their_centroid_first():
    x, _ = clustered(1500, 16, centers=8, spread=0.15, seed=7)
    order, labels, dist = select.prototypes_order(x, len(x), seed=2, n_clusters=8)
    assert np.all(np.diff(dist[order]) >= 0)  # easy (typical) images first, over the whole corpus
    for c, row in _first_of_each_cluster(order, labels).items():
        assert dist[row] == dist[labels == c].min()  # and so, in each cluster, the image nearest its centroid


@pytest.mark.parametrize("method", select.METHODS)
def test_another_seed_gives_another_subset(tmp_path, method):
    # Seeds vary the selection itself (random: permutation; kcenter: start; k-means: initialisation), so a
    # sweep's error bars include the variance between subsets.
    x, labels = clustered(1500, 16, centers=12, seed=2)
    emb = write_embeddings(tmp_path / "emb", x, labels)
    a = make_subset(emb, tmp_path / "a", SelectConfig(method=method, k_max=200, seed=0))
    b = make_subset(emb, tmp_path / "b", SelectConfig(method=method, k_max=200, seed=1))
    assert len(set(a.order[:100]) ^ set(b.order[:100])) > 0
    if method == "kcenter":
        assert a.order[0] != b.order[0]


@pytest.mark.parametrize("method, asked, used", [("kmeans", [500, 40], [300, 40]), ("prototypes", [1000], [300]),
                                                 ("kmeans-random", None, [75, 9])])
def test_cluster_counts_are_written_into_the_manifest_as_used_and_a_cut_is_said(tmp_path, capsys, method, asked, used):
    x, labels = clustered(300, 16, centers=6, seed=3)
    emb = write_embeddings(tmp_path / "emb", x, labels)
    m = make_subset(emb, tmp_path / "sub", SelectConfig(method=method, k_max=200, seed=0, clusters=asked))
    assert m.meta["clusters_used"] == used
    said = capsys.readouterr().out
    assert ("cut to" in said) == (asked is not None and asked != used)


def test_swapped_lines_in_keys_txt_are_refused_in_embeddings_and_in_subsets(tmp_path):
    from subsets.embed import load_embeddings
    from subsets.errors import InputError
    from subsets.manifest import read_manifest

    x, labels = clustered(300, 16, centers=6, seed=3)
    emb = write_embeddings(tmp_path / "emb", x, labels)
    make_subset(emb, tmp_path / "sub", SelectConfig(method="random", k_max=50))

    def swap(path, i, j):
        lines = path.read_text().splitlines()
        lines[i], lines[j] = lines[j], lines[i]
        path.write_text("".join(line + "\n" for line in lines))

    swap(tmp_path / "sub" / "keys.txt", 3, 7)  # the cache would read another image at positions 3 and 7
    with pytest.raises(InputError, match="sub/keys.txt: content differs from the sha256 in manifest.json"):
        read_manifest(tmp_path / "sub")
    swap(emb / "keys.txt", 10, 11)
    with pytest.raises(InputError, match=r"emb/keys.txt: line 11 is 'img-000011', the shards hold 'img-000010'"):
        load_embeddings(emb)


def _as_even_as_sizes_allow(counts: np.ndarray, sizes: np.ndarray) -> bool:
    """No class with images left is more than one image behind another class."""
    open_ = counts < sizes
    return not open_.any() or counts[open_].min() >= counts.max() - 1


def test_class_balanced_prefixes_are_as_even_over_the_classes_as_their_sizes_allow(tmp_path):
    rng = np.random.default_rng(0)
    sizes = np.array([400, 150, 60, 25, 10, 5])  # a long tail
    labels = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    order = select.class_balanced_order(labels, len(labels), seed=3)
    assert sorted(order.tolist()) == list(range(len(labels)))  # every image once
    for k in range(1, len(labels) + 1):
        assert _as_even_as_sizes_allow(np.bincount(labels[order[:k]], minlength=len(sizes)), sizes), k
    # a random prefix is not: the skew the class-balanced one removes
    rnd = select.random_order(len(labels), 120, seed=3)
    assert not _as_even_as_sizes_allow(np.bincount(labels[rnd], minlength=len(sizes)), sizes)
    assert select.class_balanced_order(labels, 50, seed=3).tolist() == order[:50].tolist()  # nested, seeded
    assert select.class_balanced_order(labels, 50, seed=4).tolist() != order[:50].tolist()
    # through make_subset: over the mapped shards, and after --dedup (the in-memory path) among the kept rows
    x = rng.normal(size=(len(labels), 8)).astype(np.float32)
    x[1::2] = x[0::2] + 1e-4  # every other row a near-duplicate of the one before
    emb = write_embeddings(tmp_path / "emb", x, labels, shard_size=128)
    plain = make_subset(emb, tmp_path / "cb", SelectConfig(method="class-balanced", k_max=200, seed=3))
    assert plain.order.tolist() == order[:200].tolist()
    randomly = make_subset(emb, tmp_path / "rnd", SelectConfig(method="random", k_max=200, seed=3))
    assert plain.meta["coverage"][-1]["label_balance"] > randomly.meta["coverage"][-1]["label_balance"] + 0.1
    kept = make_subset(emb, tmp_path / "dd", SelectConfig(method="class-balanced", k_max=100, seed=3, dedup=0.999))
    assert all(i % 2 == 0 for i in kept.order)  # only the first of each near-duplicate pair
    dedup_sizes = np.bincount(labels[0::2], minlength=len(sizes))
    for k in range(1, 101):
        assert _as_even_as_sizes_allow(np.bincount(labels[kept.order[:k]], minlength=len(sizes)), dedup_sizes)


def test_class_balanced_selection_of_an_unlabelled_corpus_is_one_line_before_any_dedup(tmp_path, monkeypatch):
    import subsets.make_subset as ms
    from subsets.errors import InputError

    def no_dedup(*args, **kwargs):
        raise AssertionError("deduplicated before the labels were checked")

    monkeypatch.setattr(ms.select, "dedup", no_dedup)
    monkeypatch.setattr(ms, "_dedup_with_progress", no_dedup)
    emb = write_embeddings(tmp_path / "emb", np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32))
    for dedup in (None, 0.99):
        with pytest.raises(InputError, match="the corpus has no labels; --method class-balanced needs class subfolders"):
            make_subset(emb, tmp_path / f"cb{dedup}", SelectConfig(method="class-balanced", k_max=10, dedup=dedup))
        assert not (tmp_path / f"cb{dedup}").exists()
    with pytest.raises(InputError, match="the corpus has no labels"):  # over the mapped shards too
        make_subset(emb, tmp_path / "mapped", SelectConfig(method="class-balanced", k_max=10, dedup=0.99, mapped=True))


def test_an_imported_ordering_is_a_subset_like_ours(tmp_path):
    """An ordering made elsewhere, here the keys of our own kcenter ordering, becomes the same subset: the same rows,
    keys and coverage, under its own name and seed."""
    from subsets.imported import import_ordering

    x, labels = clustered(600, 16, centers=8, seed=4)
    emb = write_embeddings(tmp_path / "emb", x, labels)
    ours = make_subset(emb, tmp_path / "kcenter", SelectConfig(method="kcenter", k_max=50, seed=2))
    (tmp_path / "mine.txt").write_text("".join(k + "\n" for k in ours.keys) + "\n")  # a trailing blank line is fine
    mine = import_ordering(emb, tmp_path / "mine.txt", tmp_path / "mine", "my-method", seed=2)
    np.testing.assert_array_equal(mine.order, ours.order)
    assert mine.keys == ours.keys and mine.method == "my-method" and mine.meta["seed"] == 2
    assert mine.meta["coverage"] == ours.meta["coverage"]
    assert mine.meta["embeddings"] == ours.meta["embeddings"] and mine.meta["corpus_size"] == 600


def test_a_bad_imported_ordering_is_one_line_and_writes_nothing(tmp_path):
    from subsets.errors import InputError
    from subsets.imported import import_ordering

    emb = write_embeddings(tmp_path / "emb", clustered(100, 8, centers=4, seed=0)[0])
    keys = (emb / "keys.txt").read_text().splitlines()
    cases = {"unknown.txt": ([keys[0], "no-such-image", keys[1]], "line 2: key 'no-such-image' is not in"),
             "repeat.txt": ([keys[3], keys[4], keys[3]], "line 3: key '" + keys[3] + "' repeats line 1"),
             "blank.txt": ([keys[0], "", keys[1]], "line 2 is blank"), "empty.txt": ([], "no keys")}
    for name, (lines, message) in cases.items():
        (tmp_path / name).write_text("".join(k + "\n" for k in lines))
        with pytest.raises(InputError, match=re.escape(message)):
            import_ordering(emb, tmp_path / name, tmp_path / "out", "mine")
        assert not (tmp_path / "out").exists()
    (tmp_path / "ok.txt").write_text(keys[0] + "\n")
    for reserved in ("random", "full", "Kcenter", "has space"):
        with pytest.raises(InputError, match="a name of its own"):
            import_ordering(emb, tmp_path / "ok.txt", tmp_path / "out", reserved)
    from .helpers import error_line, run_cli

    res = run_cli("subset", "import", "--embeddings", emb, "--keys", tmp_path / "unknown.txt", "--name", "mine",
                  "--out", tmp_path / "out")
    assert res.returncode == 2 and f"{tmp_path / 'unknown.txt'}: line 2" in error_line(res) and "Traceback" not in res.stderr
    res = run_cli("subset", "import", "--embeddings", emb, "--keys", tmp_path / "ok.txt", "--name", "mine",
                  "--out", tmp_path / "out")
    assert res.returncode == 0 and f"subset: {tmp_path / 'out'} (mine, k_max 1, imported from" in res.stdout


def test_overwrite_replaces_an_earlier_subset_but_never_a_folder_of_other_things(tmp_path):
    """--overwrite replaces its folder whole: onto a folder that is not an earlier subset it is refused, and nothing
    there is touched (`--out ~/data --overwrite` once deleted ~/data)."""
    from subsets.errors import InputError
    from subsets.imported import import_ordering

    emb = write_embeddings(tmp_path / "emb", clustered(200, 8, centers=4, seed=0)[0])
    cfg = SelectConfig(method="kmeans", k_max=20, seed=0, clusters=[4])  # in memory; mapped: the job's path
    data = tmp_path / "data"
    (data / "photos").mkdir(parents=True)
    (data / "notes.txt").write_text("mine")
    (tmp_path / "keys.txt").write_text((emb / "keys.txt").read_text().splitlines()[0] + "\n")
    for select_or_import in (lambda: make_subset(emb, data, cfg, overwrite=True),
                             lambda: make_subset(emb, data, replace(cfg, mapped=True), overwrite=True),
                             lambda: import_ordering(emb, tmp_path / "keys.txt", data, "mine", overwrite=True)):
        with pytest.raises(InputError, match=r"data: --overwrite replaces an earlier subset only, and this folder is "
                                             r"none \(it has no manifest.json\)"):
            select_or_import()
        assert (data / "notes.txt").read_text() == "mine" and (data / "photos").is_dir()
    earlier = make_subset(emb, tmp_path / "sub", cfg)
    again = make_subset(emb, tmp_path / "sub", replace(cfg, seed=1), overwrite=True)
    assert again.meta["seed"] == 1 and not np.array_equal(again.order, earlier.order)
    with pytest.raises(InputError, match="already exists"):
        make_subset(emb, tmp_path / "sub", cfg)


def test_subset_show_says_how_many_images_a_methods_seeds_subsets_share(subsets_dir, tmp_path):
    from subsets.manifest import read_manifest
    from subsets.report import shared_images

    from .helpers import run_cli

    for seed in (2, 3):  # two more draws of random over the fixture's embeddings; kcenter stays alone
        make_subset(subsets_dir / "emb", tmp_path / f"random-s{seed}", SelectConfig(method="random", k_max=40, seed=seed))
    paths = [subsets_dir / "random", tmp_path / "random-s2", tmp_path / "random-s3", subsets_dir / "kcenter"]
    manifests = [read_manifest(p) for p in paths]
    shared = shared_images(manifests)
    assert list(shared) == ["random"]  # a method given once has no pairs to share images
    orders = [m.order for m in manifests[:3]]
    for k, value in shared["random"].items():
        pairs = [len(set(a[:k]) & set(b[:k])) / k for a, b in ((orders[0], orders[1]), (orders[0], orders[2]),
                                                               (orders[1], orders[2]))]
        assert value == pytest.approx(np.mean(pairs))
    assert 0 < shared["random"][40] < 1  # 40 of 120: draws share a third of their images on average
    twice = shared_images([manifests[3], manifests[3]])  # one ordering given twice shares all of its images
    assert set(twice["kcenter"].values()) == {1.0}
    res = run_cli("subset", "show", *paths, "--out", tmp_path / "cov.png")
    assert res.returncode == 0, res.stderr
    assert "random (3 subsets)" in res.stdout and f"{shared['random'][40]:.3f}" in res.stdout
