"""The embedding job: format, resume after a kill, several processes, bad input."""

import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from subsets.embed import EmbedConfig, embed_corpus, load_embeddings
from subsets.errors import InputError
from subsets.sources import open_source

from .helpers import ACCELERATE_2PROC, ROOT, error_line, run_cli, write_embeddings


def test_embeddings_are_normalised_fp16_rows_of_the_encoder(tmp_path, image_folder, encoder):
    out = embed_corpus(open_source(image_folder), encoder, tmp_path / "emb", EmbedConfig(batch_size=16, shard_size=50))
    emb = load_embeddings(out)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["count"] == 120 and meta["dim"] == 1280 and meta["dtype"] == "float16"
    assert [s["file"] for s in meta["shards"]] == ["emb-00000.safetensors", "emb-00001.safetensors",
                                                  "emb-00002.safetensors"]
    np.testing.assert_allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, atol=2e-3)
    # Row i is the encoder's vector for key i.
    src = open_source(image_folder)
    key, image, label = list(src.iter_images())[77]
    assert emb.keys[77] == key and emb.labels[77] == label
    with torch.inference_mode():
        ref = torch.nn.functional.normalize(encoder.encode(encoder.preprocess(image)[None]).float(), dim=1)
    np.testing.assert_allclose(emb.vectors[77], ref[0].numpy(), atol=2e-3)
    # what one image's embedding costs, for a run's compute account: the encoder's forward pass at its input side
    from distill.model_cost import model_cost

    assert meta["encoder_cost"] == {"macs": model_cost(encoder.teacher, 32)["macs"], "img_size": 32}


def test_rerun_of_a_complete_job_does_nothing_and_other_corpus_is_refused(tmp_path, image_folder, encoder):
    out = embed_corpus(open_source(image_folder), encoder, tmp_path / "emb", EmbedConfig(shard_size=64))
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    embed_corpus(open_source(image_folder), encoder, out, EmbedConfig(shard_size=64))
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    other = tmp_path / "other"
    shutil.copytree(image_folder, other)
    next(other.rglob("*.png")).unlink()
    with pytest.raises(InputError, match="meta.json: made from another corpus"):
        embed_corpus(open_source(other), encoder, out, EmbedConfig(shard_size=64))


def _embed_args(src, out):
    return ["subset", "embed", "--source", src, "--out", out, "--shard-size", "16", "--batch-size", "8"]


def test_killed_embedding_resumes_to_the_same_bytes(tmp_path, image_folder):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "distill", *_embed_args(image_folder, out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "emb-00001.safetensors").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "meta.json").exists(), "the job finished before it could be killed"
    done = sorted(p.name for p in out.glob("emb-*.safetensors"))
    assert 2 <= len(done) < 8 and not list(out.glob(".*tmp"))

    resumed = run_cli(*_embed_args(image_folder, out))
    assert resumed.returncode == 0, resumed.stderr
    straight = run_cli(*_embed_args(image_folder, tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    for f in sorted((tmp_path / "straight").iterdir()):
        assert (out / f.name).read_bytes() == f.read_bytes(), f.name
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (tmp_path / "straight").iterdir())


def test_two_processes_give_the_same_embeddings_as_one(tmp_path, image_folder):
    args = ["--resolution", "64"]
    one = run_cli(*_embed_args(image_folder, tmp_path / "one"), *args)
    assert one.returncode == 0, one.stderr
    two = run_cli(*_embed_args(image_folder, tmp_path / "two"), *args, launcher=ACCELERATE_2PROC)
    assert two.returncode == 0, two.stderr
    a, b = load_embeddings(tmp_path / "one"), load_embeddings(tmp_path / "two")
    assert a.keys == b.keys and (a.labels == b.labels).all()
    # Equal up to fp16 rounding: each rank runs with its own thread count, which changes float
    # summation order in the convolutions.
    np.testing.assert_allclose(a.vectors, b.vectors, rtol=0, atol=2e-3)
    assert len({json.loads((tmp_path / d / "meta.json").read_text())["count"] for d in ("one", "two")}) == 1


def test_unreadable_images_are_skipped_and_counted_or_fail_with_strict(tmp_path, image_folder):
    corpus = tmp_path / "corpus"
    shutil.copytree(image_folder, corpus)
    bad = sorted(corpus.rglob("*.png"))[5]
    bad.write_bytes(b"truncated")
    ok = run_cli("subset", "embed", "--source", corpus, "--out", tmp_path / "emb", "--resolution", "32")
    assert ok.returncode == 0, ok.stderr
    meta = json.loads((tmp_path / "emb" / "meta.json").read_text())
    key = bad.relative_to(corpus).with_suffix("").as_posix()
    assert meta["count"] == 119 and meta["skipped_count"] == 1 and meta["skipped"][0]["key"] == key
    assert "skipped 1 unreadable" in ok.stdout
    strict = run_cli("subset", "embed", "--source", corpus, "--out", tmp_path / "strict", "--strict",
                     "--resolution", "32")
    assert strict.returncode == 2
    line = error_line(strict)
    assert key in line and "not a recognised image format" in line and "--strict" in line
    assert not (tmp_path / "strict").exists()


@pytest.mark.parametrize("case", ["empty", "k_too_large", "wrong_dim", "not_finished", "edited", "mixed_corpora",
                                  "shard_size", "niter"])
def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, case, image_folder):
    x = np.random.default_rng(0).standard_normal((60, 8)).astype(np.float32)
    emb = write_embeddings(tmp_path / "emb", x, shard_size=20)
    if case == "empty":
        (tmp_path / "empty").mkdir()
        args, expect = ["subset", "embed", "--source", tmp_path / "empty", "--out", tmp_path / "o"], "no images found"
    elif case == "k_too_large":
        args, expect = ["subset", "select", "--embeddings", emb, "--k-max", "61", "--out", tmp_path / "o"], \
            "larger than the corpus (60 images"
    elif case == "shard_size":  # 0 divided by zero once the first batch was embedded
        args, expect = ["subset", "embed", "--source", image_folder, "--shard-size", "0", "--out", tmp_path / "o"], \
            "--shard-size 0: must be at least 1"
    elif case == "niter":  # 0 iterations: the initial centroids, unsaid
        args, expect = ["subset", "select", "--embeddings", emb, "--method", "kmeans", "--k-max", "5", "--niter", "0",
                        "--out", tmp_path / "o"], "--niter 0: k-means needs at least 1 iteration"
    elif case == "wrong_dim":
        meta = json.loads((emb / "meta.json").read_text())
        meta["dim"] = 16
        (emb / "meta.json").write_text(json.dumps(meta))
        args, expect = ["subset", "select", "--embeddings", emb, "--k-max", "5", "--out", tmp_path / "o"], \
            "emb-00000.safetensors: wrong dimension"
    elif case == "not_finished":
        (emb / "meta.json").rename(emb / "progress.json")
        args, expect = ["subset", "select", "--embeddings", emb, "--k-max", "5", "--out", tmp_path / "o"], \
            "meta.json is missing (the embed job has not finished"
    elif case == "edited":
        shard = emb / "emb-00001.safetensors"
        shard.write_bytes(shard.read_bytes()[:-8] + b"\x00" * 8)
        args, expect = ["subset", "select", "--embeddings", emb, "--k-max", "5", "--out", tmp_path / "o"], \
            "emb-00001.safetensors: content differs"
    else:
        other = write_embeddings(tmp_path / "emb2", x[:50], shard_size=20)
        for e, name in ((emb, "a"), (other, "b")):
            assert run_cli("subset", "select", "--embeddings", e, "--k-max", "5", "--out", tmp_path / name).returncode == 0
        args, expect = ["subset", "show", tmp_path / "a", tmp_path / "b"], "selected from other embeddings"
    res = run_cli(*args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert expect in error_line(res)
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))
