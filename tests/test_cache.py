"""The target cache: equal to a fresh teacher pass, resumable, parallel, nested in k, guarded."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from distill.cached_views import CachedViews
from subsets.errors import InputError
from subsets.manifest import read_manifest
from subsets.sources import open_source
from teachers import load_teacher
from teachers.cache import CacheConfig, TargetCache, bytes_per_image_view, cache_targets
from teachers.stats import StatsConfig
from teachers.views import ViewPolicy, apply_view, views_for

from .helpers import ACCELERATE_2PROC, ROOT, error_line, run_cli


@pytest.fixture(scope="module")
def teacher():
    return load_teacher("mobilenetv2_imagenet", resolution=64)


def _cache(subsets_dir, image_folder, teacher, out, k=None, method="random", **kw):
    config = CacheConfig(views=ViewPolicy(views=2, seed=3), batch_size=8, shard_size=kw.pop("shard_size", 8), **kw)
    return cache_targets(open_source(image_folder), read_manifest(subsets_dir / method), teacher, out, k, config)


def test_cached_targets_equal_a_fresh_teacher_pass_on_the_stored_view(tmp_path, subsets_dir, image_folder, teacher):
    cache = TargetCache(_cache(subsets_dir, image_folder, teacher, tmp_path / "t"))
    subset = read_manifest(subsets_dir / "random")
    images = {k: im for k, im, _ in open_source(image_folder).iter_images()}
    assert len(cache) == 40 and cache.names == ["cls", "patch"]
    for position in (0, 13, 39):
        t = cache.targets(position)
        assert t["cls"].dtype == torch.float16 and t["patch"].shape == (2, 4, 1280)
        np.testing.assert_allclose(t["view"].numpy(), views_for(ViewPolicy(views=2, seed=3), position))
        crops = torch.stack([teacher.normalize(apply_view(images[subset.keys[position]], v, 64)) for v in t["view"].numpy()])
        fresh = teacher(crops)
        torch.testing.assert_close(t["cls"].float(), fresh["cls"], atol=2e-3, rtol=2e-3)
        torch.testing.assert_close(t["patch"].float(), fresh["patch"], atol=2e-2, rtol=2e-3)
    assert cache.index["bytes"] >= 40 * 2 * bytes_per_image_view(teacher, None)


def test_cached_intermediate_maps_equal_the_teachers_own_layers_and_another_layer_set_is_refused(
        tmp_path, subsets_dir, image_folder, teacher):
    layered = load_teacher("mobilenetv2_imagenet", resolution=64, layers=[17, 14])
    cache = TargetCache(_cache(subsets_dir, image_folder, layered, tmp_path / "t", k=8))
    assert cache.names == ["cls", "patch", "layer14_patch", "layer17_patch"]
    assert cache.index["teacher"]["layers"] == {"layer14_patch": {"dim": 96, "tokens": 16},
                                                "layer17_patch": {"dim": 160, "tokens": 4}}
    assert {"layer14_patch_mean", "layer17_patch_std"} <= set(cache.stats())
    subset, images = read_manifest(subsets_dir / "random"), {k: im for k, im, _ in open_source(image_folder).iter_images()}
    t = cache.targets(5)
    crops = torch.stack([teacher.normalize(apply_view(images[subset.keys[5]], v, 64)) for v in t["view"].numpy()])
    with torch.no_grad():  # the plain teacher's own modules, run by hand: after the first 14 and the first 17
        at14 = teacher.features[:14](crops)
        at17 = teacher.features[14:17](at14)
    for name, fmap in (("layer14_patch", at14), ("layer17_patch", at17)):
        torch.testing.assert_close(t[name].float(), fmap.flatten(2).transpose(1, 2), atol=2e-2, rtol=2e-3)
    torch.testing.assert_close(t["cls"].float(), teacher(crops)["cls"], atol=2e-3, rtol=2e-3)  # the rest unchanged
    # --patch-grid pools the maps finer than it, as it pools `patch`
    pooled = TargetCache(_cache(subsets_dir, image_folder, layered, tmp_path / "g2", k=8, patch_grid=2)).targets(5)
    assert pooled["layer14_patch"].shape == (2, 4, 96) and pooled["layer17_patch"].shape == (2, 4, 160)
    by_hand = torch.nn.functional.adaptive_avg_pool2d(at14, 2).flatten(2).transpose(1, 2)
    torch.testing.assert_close(pooled["layer14_patch"].float(), by_hand, atol=2e-2, rtol=2e-3)
    with pytest.raises(InputError, match="made with other teacher settings"):
        _cache(subsets_dir, image_folder, load_teacher("mobilenetv2_imagenet", resolution=64, layers=[14]),
               tmp_path / "t", k=8)
    with pytest.raises(InputError, match="layer 19 is not an intermediate layer"):
        load_teacher("mobilenetv2_imagenet", layers=[19])
    with pytest.raises(InputError, match="intermediate layers .* not by timm models"):
        load_teacher("timm:resnet18", layers=[3])


def test_views_differ_but_are_reproducible():
    policy = ViewPolicy(views=3, seed=0)
    a, b = views_for(policy, 5), views_for(policy, 5)
    np.testing.assert_array_equal(a, b)
    assert a[0].tolist() == [0, 0, 1, 1, 0] and not np.allclose(a[1], a[2])
    assert not np.allclose(views_for(policy, 6)[1], a[1])
    assert ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) >= 0.35 - 1e-6).all()


def test_first_k_of_a_large_cache_equals_a_cache_made_for_k(tmp_path, subsets_dir, image_folder, teacher):
    big = TargetCache(_cache(subsets_dir, image_folder, teacher, tmp_path / "big"))
    small = TargetCache(_cache(subsets_dir, image_folder, teacher, tmp_path / "small", k=13))
    assert len(small) == 13
    for name in ("cls", "patch", "view"):
        torch.testing.assert_close(big.first(13, name), small.first(13, name), atol=0, rtol=0)
    # A cache for k serves any smaller k, and asking it for more than it holds says so.
    subset = read_manifest(subsets_dir / "random")
    big.check_subset(subset, 13)
    with pytest.raises(InputError, match="holds only the first 13"):
        small.check_subset(subset, 20)
    # Growing the small cache reuses its complete shards and then equals the big one.
    before = (tmp_path / "small" / "shard-00000.safetensors").stat().st_mtime_ns
    _cache(subsets_dir, image_folder, teacher, tmp_path / "small")
    assert (tmp_path / "small" / "shard-00000.safetensors").stat().st_mtime_ns == before
    assert TargetCache(tmp_path / "small").index["shards"] == big.index["shards"]
    # Growing a cache with other statistics would give its runs two target spaces: refused before any work.
    grown = _cache(subsets_dir, image_folder, teacher, tmp_path / "grown", k=13)
    with pytest.raises(InputError, match="holds target statistics on .* grow it with the same --stats-samples"):
        _cache(subsets_dir, image_folder, teacher, grown, stats=StatsConfig(samples=50))
    assert TargetCache(grown).index["k"] == 13


def test_cache_for_another_subset_or_teacher_is_refused(tmp_path, subsets_dir, image_folder, teacher):
    out = _cache(subsets_dir, image_folder, teacher, tmp_path / "t", k=8)
    with pytest.raises(InputError, match="made for another subset"):
        _cache(subsets_dir, image_folder, teacher, out, method="kcenter")
    with pytest.raises(InputError, match="made for another subset"):
        TargetCache(out).check_subset(read_manifest(subsets_dir / "kcenter"))
    other = load_teacher("mobilenetv2_imagenet", resolution=96)
    with pytest.raises(InputError, match="other teacher"):
        _cache(subsets_dir, image_folder, other, out)


def test_truncated_or_edited_shards_are_detected(tmp_path, subsets_dir, image_folder, teacher):
    out = _cache(subsets_dir, image_folder, teacher, tmp_path / "t", k=16)
    shard = out / "shard-00001.safetensors"
    data = shard.read_bytes()
    shard.write_bytes(data[:-100])
    with pytest.raises(InputError, match="shard-00001.safetensors: missing or truncated"):
        TargetCache(out)
    shard.write_bytes(data[:-4] + bytes(4))
    cache = TargetCache(out)
    with pytest.raises(InputError, match="shard-00001.safetensors: content differs"):
        cache.verify()


def test_dataset_yields_the_students_view_with_its_targets_across_workers(tmp_path, subsets_dir, image_folder, teacher):
    cache = TargetCache(_cache(subsets_dir, image_folder, teacher, tmp_path / "t", k=16))
    subset = read_manifest(subsets_dir / "random")
    ds = CachedViews(cache, open_source(image_folder), subset, resolution=32, k=12)
    assert len(ds) == 24
    batches = list(torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2))
    positions = torch.cat([b["position"] for b in batches])
    views = torch.cat([b["view"] for b in batches])
    assert positions.tolist() == [p for p in range(12) for _ in range(2)] and views.tolist() == [0, 1] * 12
    images = {k: im for k, im, _ in open_source(image_folder).iter_images()}
    item = ds[7]  # position 3, view 1
    params = cache.targets(3)["view"][1].numpy()
    expected = ds.to_tensor(apply_view(images[subset.keys[3]], params, 32))
    torch.testing.assert_close(item["image"], expected)
    torch.testing.assert_close(torch.cat([b["cls"] for b in batches])[7], cache.targets(3)["cls"][1].float())
    assert batches[0]["image"].shape == (5, 3, 32, 32) and batches[0]["patch"].shape == (5, 4, 1280)


def test_full_disk_leaves_no_half_written_shard_and_a_rerun_resumes(tmp_path, subsets_dir, image_folder, teacher,
                                                                   monkeypatch):
    import errno

    import subsets.fileio as fileio

    real_fdopen, calls = fileio.os.fdopen, []

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    def fdopen(fd, mode):
        if "shard-" in os.readlink(f"/proc/self/fd/{fd}"):  # shards only (lock files are opened so too)
            calls.append(fd)
        return FullDisk(real_fdopen(fd, mode)) if len(calls) == 3 and "shard-" in os.readlink(f"/proc/self/fd/{fd}") \
            else real_fdopen(fd, mode)

    monkeypatch.setattr(fileio.os, "fdopen", fdopen)
    with pytest.raises(InputError, match="shard-00002.safetensors: disk full"):
        _cache(subsets_dir, image_folder, teacher, tmp_path / "t", k=40)
    monkeypatch.setattr(fileio.os, "fdopen", real_fdopen)
    files = sorted(p.name for p in (tmp_path / "t").iterdir())
    assert files == ["progress.json", "shard-00000.safetensors", "shard-00001.safetensors"]
    done = (tmp_path / "t" / "shard-00000.safetensors").stat().st_mtime_ns
    _cache(subsets_dir, image_folder, teacher, tmp_path / "t", k=40)
    assert (tmp_path / "t" / "shard-00000.safetensors").stat().st_mtime_ns == done
    assert len(TargetCache(tmp_path / "t")) == 40


def _cache_args(image_folder, subsets_dir, out, *extra):
    return ["cache", "--source", image_folder, "--subset", subsets_dir / "random", "--out", out, "--resolution", "64",
            "--shard-size", "4", "--batch-size", "4", *extra]


def test_killed_cache_job_resumes_to_the_same_bytes(tmp_path, subsets_dir, image_folder):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "distill", *map(str, _cache_args(image_folder, subsets_dir, out))],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "shard-00001.safetensors").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "index.json").exists(), "the job finished before it could be killed"
    assert 2 <= len(list(out.glob("shard-*"))) < 10
    assert run_cli(*_cache_args(image_folder, subsets_dir, out)).returncode == 0
    assert run_cli(*_cache_args(image_folder, subsets_dir, tmp_path / "straight")).returncode == 0
    for f in sorted((tmp_path / "straight").iterdir()):
        assert (out / f.name).read_bytes() == f.read_bytes(), f.name


def test_two_process_cache_equals_one_process(tmp_path, subsets_dir, image_folder):
    assert run_cli(*_cache_args(image_folder, subsets_dir, tmp_path / "one")).returncode == 0
    two = run_cli(*_cache_args(image_folder, subsets_dir, tmp_path / "two"), launcher=ACCELERATE_2PROC)
    assert two.returncode == 0, two.stderr
    a, b = TargetCache(tmp_path / "one"), TargetCache(tmp_path / "two")
    assert [s["count"] for s in a.index["shards"]] == [s["count"] for s in b.index["shards"]]
    for name in ("cls", "patch", "view"):
        torch.testing.assert_close(a.first(40, name).float(), b.first(40, name).float(), atol=2e-2, rtol=2e-3)


@pytest.mark.parametrize("case", ["k_too_large", "other_corpus", "patch_grid", "bad_teacher_weights", "shard_size",
                                  "resolution"])
def test_bad_cache_input_is_one_line_and_exit_2(tmp_path, subsets_dir, image_folder, case):
    args = _cache_args(image_folder, subsets_dir, tmp_path / "o")
    if case == "k_too_large":
        args += ["--k", "41"]
        expect = "--k 41: outside 1..40"
    elif case == "other_corpus":
        args[2] = "builtin:cifar10-demo-test"
        expect = "builtin:cifar10-demo-test: not the corpus"
    elif case == "patch_grid":
        args += ["--patch-grid", "3"]
        expect = "--patch-grid 3: must lie in 1..2"
    elif case == "shard_size":  # 0 would divide by zero part-way
        args += ["--shard-size", "0"]
        expect = "--shard-size 0: must be at least 1"
    elif case == "resolution":  # 0 would be read as the teacher's own side
        args[args.index("--resolution") + 1] = "0"
        expect = "resolution 0 px: give a positive side"
    else:
        (tmp_path / "w").mkdir()
        (tmp_path / "w" / "config.json").write_text(json.dumps({"model_type": "dinov2"}))
        args[args.index("--resolution"):args.index("--resolution") + 2] = ["--teacher", tmp_path / "w"]
        expect = "no weights for"
    res = run_cli(*args)
    assert res.returncode == 2 and expect in error_line(res)
    assert not (tmp_path / "o").exists()


def test_rerun_rewrites_a_damaged_shard_of_a_finished_cache(tmp_path, subsets_dir, image_folder, teacher):
    out = _cache(subsets_dir, image_folder, teacher, tmp_path / "t", k=16)
    good = (out / "shard-00000.safetensors").read_bytes()
    (out / "shard-00000.safetensors").write_bytes(good[:-4] + bytes(4))
    _cache(subsets_dir, image_folder, teacher, out, k=24)  # growing k reuses shards only after checking them
    assert (out / "shard-00000.safetensors").read_bytes() == good
    TargetCache(out).verify()


def test_unreadable_image_in_the_subset_is_skipped_and_listed_or_fails_with_strict(tmp_path, subsets_dir, image_folder,
                                                                                   teacher):
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(image_folder, corpus)
    subset = read_manifest(subsets_dir / "random")
    broken = subset.keys[5]
    (corpus / f"{broken}.png").write_bytes(b"damaged since it was embedded")
    out = _cache(subsets_dir, corpus, teacher, tmp_path / "t", k=16)
    cache = TargetCache(out)
    assert [(i["position"], i["key"]) for i in cache.index["skipped"]] == [(5, broken)]
    assert not cache.targets(5)["cls"].any()
    ds = CachedViews(cache, open_source(corpus), subset, resolution=32)
    assert len(ds) == 30 and 5 not in {ds[i]["position"] for i in range(len(ds))}
    with pytest.raises(InputError, match=f"{broken}.* is unreadable .*--strict"):
        _cache(subsets_dir, corpus, teacher, tmp_path / "strict", k=16, strict=True)
    assert not (tmp_path / "strict").exists()


def _rewrite_header(shard, change):
    """The shard with its JSON header changed by `change(header)` (and its length field to match, unless the
    change sets `__length__`)."""
    import struct

    data = shard.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    change(header)
    length = header.pop("__length__", None)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    shard.write_bytes(struct.pack("<Q", length or len(raw)) + raw + data[8 + n:])


@pytest.mark.parametrize("case, message", [
    ("huge header length", "not a valid safetensors shard"),
    ("bf16 dtype", "has dtype BF16"),
    ("overlapping offsets", "(invalid offset|overlapping)"),
])
def test_a_damaged_or_crafted_shard_header_is_one_line_naming_the_shard_before_any_run_folder(
        tmp_path, subsets_dir, image_folder, teacher, case, message):
    out = _cache(subsets_dir, image_folder, teacher, tmp_path / "t", k=16)
    shard = out / "shard-00001.safetensors"

    def change(h):
        if case == "huge header length":
            h["__length__"] = 2**40
        elif case == "bf16 dtype":
            h["cls"]["dtype"] = "BF16"
        else:  # `row` read from inside `view`: training would read the wrong bytes
            h["row"]["data_offsets"] = [h["view"]["data_offsets"][0], h["view"]["data_offsets"][0] + 8 * h["row"]["shape"][0]]

    _rewrite_header(shard, change)
    index = json.loads((out / "index.json").read_text())
    index["shards"][1]["bytes"] = shard.stat().st_size  # a consistent index: only the header is wrong
    (out / "index.json").write_text(json.dumps(index))
    with pytest.raises(InputError, match=f"shard-00001.safetensors: .*{message}"):
        TargetCache(out)
    res = run_cli("train", "--targets", out, "--out", tmp_path / "run", "--steps", "2", "--global-batch-size", "4",
                  "--workers", "0")
    assert res.returncode == 2 and "shard-00001.safetensors" in error_line(res) and "Traceback" not in res.stderr
    assert not (tmp_path / "run").exists()
