"""Selection across processes: embeddings mapped shard by shard, and k-center and balanced k-means equal for 1, 2 and 3
processes."""

import json
import os
import re
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from subsets import select
from subsets.distributed_kcenter import kcenter_shards
from subsets.errors import InputError
from subsets.shards import EmbeddingShards

from .helpers import ROOT, clustered, error_line, launch_processes, run_cli, unit, write_embeddings


@pytest.fixture(scope="module")
def emb(tmp_path_factory):
    """1,500 clustered vectors in 6 shards of 250, with exact duplicates across shard boundaries (ties)."""
    x, _ = clustered(1500, 32, centers=40, spread=0.2, seed=3)
    x[760], x[1240] = x[10], x[10]  # three equal rows in shards 0, 3 and 4: the lowest index must win their tie
    return write_embeddings(tmp_path_factory.mktemp("emb") / "e", x, shard_size=250), x


def _launch(emb_dir, out, processes, threads=1, k=300, extra=()):
    return launch_processes("subsets.distributed_kcenter", emb_dir, "--k", k, "--seed", 4, "--batch", 16, "--out", out,
                            *extra, processes=processes, threads=threads)


def test_kcenter_over_mapped_shards_equals_the_in_memory_greedy_and_the_textbook_loop(emb):
    path, _ = emb
    x = np.concatenate([EmbeddingShards(path).map(s) for s in range(6)]).astype(np.float32)
    order = kcenter_shards(path, 300, seed=4, batch=16)
    np.testing.assert_array_equal(order, select.kcenter_greedy(x, 300, seed=4, batch=16))
    np.testing.assert_array_equal(order, select.kcenter_reference(x, 300, seed=4))
    assert len(set(order.tolist())) == 300 and not {760, 1240} <= set(order.tolist())  # ties: one of the three


def test_distributed_kcenter_gives_the_one_process_order_for_1_2_and_3_processes_each_mapping_its_own_shards(
        emb, tmp_path):
    path, _ = emb
    expected = kcenter_shards(path, 300, seed=4, batch=16)
    mapped = {}
    for w in (1, 2, 3):
        res = _launch(path, tmp_path / f"order-{w}.npy", w, threads=2 if w == 1 else 1)  # nor does the thread count
        assert res.returncode == 0, res.stderr[-3000:]
        np.testing.assert_array_equal(np.load(tmp_path / f"order-{w}.npy"), expected)
        lines = re.findall(r"rank (\d) of \d: maps shards (\d)-(\d) \(([\d,]+) bytes", res.stdout)
        assert len(lines) == w
        mapped[w] = {int(r): (int(a), int(b), int(n.replace(",", ""))) for r, a, b, n in lines}
    total = 1500 * 32 * 2  # fp16
    assert mapped[1] == {0: (0, 5, total)}
    for w in (2, 3):  # the shards are split, never all in one process
        assert sorted(v[:2] for v in mapped[w].values()) == [(i * 6 // w, (i + 1) * 6 // w - 1) for i in range(w)]
        assert sum(v[2] for v in mapped[w].values()) == total and max(v[2] for v in mapped[w].values()) <= total / w


def test_a_stopped_kcenter_ordering_resumes_to_the_uninterrupted_order_whatever_the_process_counts(emb, tmp_path,
                                                                                                    capsys):
    import shutil

    path, _ = emb
    expected = kcenter_shards(path, 300, seed=4, batch=16)
    saved = tmp_path / "one"

    def stop(done):  # as if the job were killed after 150 picks
        if done == 150:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        kcenter_shards(path, 300, seed=4, batch=16, progress=stop, checkpoint=saved, save_every=0)
    state = json.loads((saved / "state.json").read_text())
    picks, gen = state["progress"]["picks"], state["generation"]
    assert 0 < picks < 150 and gen > 1  # the last save before the stop: one generation left, whole
    assert sorted(p.name for p in saved.iterdir()) == sorted(["state.json", f"order.g{gen}.npy"]
                                                             + [f"bound-{s * 250}.g{gen}.npy" for s in range(6)])
    shutil.copytree(saved, tmp_path / "one-copy")
    np.testing.assert_array_equal(kcenter_shards(path, 300, seed=4, batch=16, checkpoint=saved), expected)
    assert f"resuming the k-center ordering at pick {picks} of 300" in capsys.readouterr().out
    # saved by one process, resumed by two; saved by two (a job of k = 150: the greedy order does not depend on k),
    # resumed by one
    res = _launch(path, tmp_path / "two.npy", 2, extra=["--checkpoint", tmp_path / "one-copy"])
    assert res.returncode == 0, res.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "two.npy"), expected)
    res = _launch(path, tmp_path / "half.npy", 2, k=150, extra=["--checkpoint", tmp_path / "two-saved", "--save-every", 0])
    assert res.returncode == 0, res.stderr[-3000:]
    assert 0 < json.loads((tmp_path / "two-saved" / "state.json").read_text())["progress"]["picks"] < 150
    np.testing.assert_array_equal(kcenter_shards(path, 300, seed=4, batch=16, checkpoint=tmp_path / "two-saved"),
                                  expected)
    # a checkpoint of another selection is refused, naming what differs
    with pytest.raises(InputError, match=r"a checkpoint of another selection \(differs in batch, seed\)"):
        kcenter_shards(path, 300, seed=5, batch=32, checkpoint=saved)
    (tmp_path / "one-copy" / f"bound-250.g{gen}.npy").write_bytes(b"not an array")  # and a damaged one
    with pytest.raises(InputError, match=rf"bound-250.g{gen}.npy: unreadable k-center checkpoint file"):
        kcenter_shards(path, 300, seed=4, batch=16, checkpoint=tmp_path / "one-copy")


def test_a_stopped_selection_job_resumes_from_its_checkpoint_and_removes_it_once_written(emb, tmp_path, monkeypatch):
    import subsets.checkpoint as kc
    import subsets.distributed_kcenter as dk
    from subsets.make_subset import SelectConfig, make_subset

    path, _ = emb
    config = SelectConfig(method="kcenter", k_max=400, seed=4)
    applied, apply, best, tried = [], dk._Apply.__call__, dk._Candidates.best, [0]

    def counted(self):
        tried[0] += 1
        return best(self)

    def logged(self, bound, pending, pending_sq):  # where the applies fall: the picks pending, the candidates tried
        applied.append((len(pending), tried[0]))
        tried[0] = 0
        apply(self, bound, pending, pending_sq)

    monkeypatch.setattr(dk._Candidates, "best", counted)
    monkeypatch.setattr(dk._Apply, "__call__", logged)
    uninterrupted = make_subset(path, tmp_path / "whole", config).order
    assert not kc.checkpoint_folder(tmp_path / "whole").exists()
    every_apply, applied[:], tried[0] = list(applied), [], 0
    retire, picked = dk._retire, []

    def killed_at_pick_250(rows, bound, g):
        picked.append(g)
        if len(picked) == 250:
            raise KeyboardInterrupt
        retire(rows, bound, g)

    monkeypatch.setattr(kc, "SAVE_EVERY", 0.0)
    monkeypatch.setattr(dk, "_retire", killed_at_pick_250)
    with pytest.raises(KeyboardInterrupt):
        make_subset(path, tmp_path / "sub", config)
    saved = kc.checkpoint_folder(tmp_path / "sub")
    state = json.loads((saved / "state.json").read_text())
    assert not (tmp_path / "sub").exists() and 0 < state["progress"]["picks"] < 250
    monkeypatch.setattr(dk, "_retire", retire)
    applied[:], tried[0] = [], 0
    np.testing.assert_array_equal(make_subset(path, tmp_path / "sub", config).order, uninterrupted)
    assert not saved.exists()
    # the resumed job applies its picks where the uninterrupted one did, so each bound is computed the same way
    assert 0 < len(applied) < len(every_apply) and applied == every_apply[len(every_apply) - len(applied):]


def test_a_second_selection_into_the_same_folder_is_refused_while_the_first_runs(emb, tmp_path):
    import socket

    from subsets.lock import lock_path

    out = tmp_path / "sub"  # held by a live process (this one), as a running job holds it
    lock_path(out).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": "now",
                                          "command": "distill subset select"}))
    res = run_cli("subset", "select", "--embeddings", emb[0], "--k-max", "50", "--out", out)
    assert res.returncode == 2 and "sub: in use by another job" in error_line(res) and not out.exists()


def _copy(emb_dir, tmp_path):
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(emb_dir, dst)
    return dst


def test_bad_shards_are_refused_with_one_line_before_any_work(emb, tmp_path):
    path, x = emb
    bad = _copy(path, tmp_path)
    (bad / "emb-00002.safetensors").unlink()
    with pytest.raises(InputError, match=r"emb-00002.safetensors: missing \(listed in meta.json\)"):
        EmbeddingShards(bad)
    save_file({"emb": torch.zeros(250, 16).half(), "label": torch.zeros(250).long()}, str(bad / "emb-00002.safetensors"),
              metadata={"info": json.dumps({"keys": [], "skipped": []})})
    with pytest.raises(InputError, match=r"emb-00002.safetensors: wrong dimension: emb is \[250, 16\], meta.json says dim 32"):
        EmbeddingShards(bad)
    save_file({"emb": torch.zeros(250, 32), "label": torch.zeros(250).long()}, str(bad / "emb-00002.safetensors"),
              metadata={"info": json.dumps({"keys": [], "skipped": []})})
    with pytest.raises(InputError, match=r"emb-00002.safetensors: emb is F32, the other shards and meta.json say F16"):
        EmbeddingShards(bad)
    with pytest.raises(InputError, match=r"7 processes but only 6 shard\(s\)"):
        EmbeddingShards(path).owned(7, 0)


def test_more_processes_than_shards_is_one_line_from_the_launched_job(tmp_path):
    x, _ = clustered(40, 8, centers=4, seed=0)
    small = write_embeddings(tmp_path / "small", x, shard_size=40)  # one shard
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "subsets.distributed_kcenter", str(small), "--k", "10", "--out", str(tmp_path / "o.npy")]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=ROOT,
                         timeout=300)  # through the launcher, as a user starts it
    assert res.returncode != 0
    assert "error: " in res.stderr and "2 processes but only 1 shard(s)" in res.stderr


def test_rows_converted_block_by_block_give_the_order_of_rows_kept_in_memory(emb, monkeypatch):
    import subsets.distributed_kcenter as dk

    path, _ = emb
    kept = kcenter_shards(path, 300, seed=4, batch=16)
    monkeypatch.setattr(dk, "DENSE_BYTES", 0)  # as for a corpus too large to keep: memory flat in N
    np.testing.assert_array_equal(kcenter_shards(path, 300, seed=4, batch=16), kept)
    np.testing.assert_array_equal(kcenter_shards(path, 300, seed=4, batch=16, proposals=1), kept)


def test_distill_subset_select_under_accelerate_launch_writes_the_one_process_subset(emb, tmp_path):
    from .helpers import ACCELERATE_2PROC

    path, _ = emb
    args = ["subset", "select", "--embeddings", path, "--method", "kcenter", "--k-max", "300", "--seed", "4"]
    two = run_cli(*args, "--out", tmp_path / "two", launcher=ACCELERATE_2PROC, env_extra={"OMP_NUM_THREADS": "1"})
    assert two.returncode == 0, two.stderr[-3000:]
    assert re.search(r"kcenter ordering .*300/300", two.stderr)  # the main process shows the picks' progress
    from subsets.comm import Comm
    from subsets.make_subset import SelectConfig, make_subset

    one = make_subset(path, tmp_path / "one", SelectConfig(method="kcenter", k_max=300, seed=4))
    np.testing.assert_array_equal(np.load(tmp_path / "two" / "order.npy"), one.order)
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["hash"] == one.hash and manifest["coverage"] == one.meta["coverage"]
    # dedup across the processes (each group's vectors gathered once), then prototypes (Lloyd's k-means across the
    # processes, nearest its centroid first) on the rows kept: one launch for both
    from subsets.distributed_dedup import dedup_shards
    from subsets.distributed_kmeans import prototypes_shards

    pr = run_cli("subset", "select", "--embeddings", path, "--method", "prototypes", "--k-max", "30", "--dedup",
                 "0.999", "--out", tmp_path / "pr", launcher=ACCELERATE_2PROC, env_extra={"OMP_NUM_THREADS": "1"})
    assert pr.returncode == 0, pr.stderr[-3000:]
    manifest = json.loads((tmp_path / "pr" / "manifest.json").read_text())
    assert manifest["dedup"] == {"threshold": 0.999, "kept": 1498, "removed": 2}  # the two copies of row 10
    keep = dedup_shards(path, 0.999, comm=Comm(alone=True))
    expected = keep[prototypes_shards(path, 30, 0, manifest["clusters_used"][0], comm=Comm(alone=True), keep=keep)]
    np.testing.assert_array_equal(np.load(tmp_path / "pr" / "order.npy"), expected)


def test_the_job_across_processes_never_loads_the_corpus_and_writes_the_one_process_manifest(emb, tmp_path,
                                                                                              monkeypatch):
    import subsets.make_subset as ms
    from subsets.comm import Comm

    path, _ = emb
    for method in ("kcenter", "random"):
        config = ms.SelectConfig(method=method, k_max=200, seed=4)
        one = ms.make_subset(path, tmp_path / f"one-{method}", config)
        with monkeypatch.context() as m:  # the job maps its own shards: loading every vector is a failure
            m.setattr(ms, "load_embeddings", lambda *a, **k: pytest.fail("loaded the whole corpus"))
            across = ms.make_subset_across_processes(path, tmp_path / f"across-{method}", config, Comm(alone=True))
        np.testing.assert_array_equal(across.order, one.order)
        assert across.keys == one.keys and across.hash == one.hash
        assert across.meta["coverage"] == one.meta["coverage"]  # distances, labels and corpus clusters alike
        assert {"mean_dist", "max_dist", "cluster_coverage"} <= set(one.meta["coverage"][-1])
    # with dedup: the exact duplicates of row 10 go, and kcenter runs on the rows kept, as in one process
    config = ms.SelectConfig(method="kcenter", k_max=200, seed=4, dedup=0.999)
    one = ms.make_subset(path, tmp_path / "one-dedup", config)
    across = ms.make_subset_across_processes(path, tmp_path / "across-dedup", config, Comm(alone=True))
    assert one.meta["dedup"] == across.meta["dedup"] == {"threshold": 0.999, "kept": 1498, "removed": 2}
    np.testing.assert_array_equal(across.order, one.order)
    assert not {760, 1240} & set(one.order.tolist())
    with pytest.raises(InputError, match=r"--k-max 1499: larger than the corpus after --dedup 0.999 \(1498 of 1500"):
        ms.make_subset_across_processes(path, tmp_path / "big", ms.SelectConfig(k_max=1499, dedup=0.999),
                                        Comm(alone=True))
    assert not (tmp_path / "big").exists()


def test_mapped_runs_k_means_and_dedup_in_one_process_from_the_maps_and_short_memory_is_refused_first(emb, tmp_path,
                                                                                                     monkeypatch):
    import subsets.make_subset as ms
    from distill.cli import main
    from subsets.comm import Comm

    path, _ = emb
    config = ms.SelectConfig(method="kmeans", k_max=100, seed=4, clusters=[24, 4], niter=5, dedup=0.999, mapped=True)
    monkeypatch.setattr(ms, "available_memory", lambda: 100_000)  # less than the 1,500 x 32 float32 vectors
    with monkeypatch.context() as m:  # --mapped reads the maps: loading every vector is a failure
        m.setattr(ms, "load_embeddings", lambda *a, **k: pytest.fail("loaded the whole corpus"))
        one = ms.make_subset(path, tmp_path / "one", config)
        args = ["subset", "select", "--embeddings", str(path), "--method", "kmeans", "--k-max", "100", "--seed", "4",
                "--clusters", "24,4", "--niter", "5", "--dedup", "0.999", "--mapped", "--out", str(tmp_path / "cli")]
        assert main(args) == 0
    # the order of the job across processes (the same for 1, 2 and 3 processes: tested above), and the manifest says
    # it ran over the maps, whether asked (--mapped) or across processes
    across = ms.make_subset_across_processes(path, tmp_path / "across", replace(config, mapped=False), Comm(alone=True))
    np.testing.assert_array_equal(one.order, across.order)
    np.testing.assert_array_equal(np.load(tmp_path / "cli" / "order.npy"), one.order)
    assert one.meta["params"]["mapped"] is across.meta["params"]["mapped"] is True
    assert one.meta["dedup"]["removed"] == 2
    # in memory (faiss), the same selection would not fit: one line before anything is loaded or written
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: --method kmeans with --dedup in one process holds "
                                         r"all 1,500 vectors in memory \(0.0 GiB as float32\), more than the 0.0 GiB "
                                         r"available; pass --mapped"):
        ms.make_subset(path, tmp_path / "memory", replace(config, mapped=False))
    assert not (tmp_path / "memory").exists()
    monkeypatch.undo()
    memory = ms.make_subset(path, tmp_path / "memory", replace(config, mapped=False))
    assert memory.meta["params"]["mapped"] is False


def test_dedup_over_blocks_keeps_what_the_in_memory_dedup_keeps_and_within_clusters_drops_every_copy():
    from subsets.distributed_dedup import dedup_blocks

    rng = np.random.default_rng(5)
    base = unit(rng.standard_normal((300, 32)))
    planted = [3, 50, 51, 200]
    copies = unit(base[planted] + 0.002 * rng.standard_normal((4, 32)))
    x = unit(np.vstack([base, copies, copies[:1] + 0.001, base[7:8]]))  # row 3 has two near-copies, row 7 an exact one
    blocks, starts = [x[:120], x[120:250], x[250:]], [0, 120, 250]  # pairs across blocks too
    expected = select.dedup(x, threshold=0.99)
    np.testing.assert_array_equal(expected, np.arange(300))
    np.testing.assert_array_equal(dedup_blocks(blocks, starts, len(x), 0.99), expected)
    # above exact_max, pairs are searched within Lloyd's clusters: copies this close share their cluster
    np.testing.assert_array_equal(dedup_blocks(blocks, starts, len(x), 0.99, exact_max=100), expected)
    # the GPU path (`--device cuda`), with torch's CPU device standing in: the same search in torch products
    for exact_max in (50_000, 100):
        np.testing.assert_array_equal(dedup_blocks(blocks, starts, len(x), 0.99, exact_max=exact_max,
                                                   device=torch.device("cpu")), expected)


def test_a_stopped_dedup_resumes_after_its_last_saved_group_and_a_finished_one_is_not_searched_again(tmp_path,
                                                                                                       monkeypatch,
                                                                                                       capsys):
    import subsets.distributed_dedup as dd
    import subsets.make_subset as ms
    from subsets.comm import Comm

    rng = np.random.default_rng(7)
    x, _ = clustered(600, 32, centers=12, spread=0.3, seed=7)
    x = unit(np.vstack([x, x[rng.choice(600, 80, replace=False)] + 0.003 * rng.standard_normal((80, 32))]))
    path = write_embeddings(tmp_path / "e", x, shard_size=100)
    kw = dict(exact_max=100, group_rows=50)  # k-means groups of about 50 rows, as 10,000 on a large corpus
    expected = dd.dedup_shards(path, 0.99, **kw)
    np.testing.assert_array_equal(expected, np.arange(600))  # every planted copy goes: copies share their group

    def stop(done, of):  # as if the job were killed in group 9
        if done == 9:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        dd.dedup_shards(path, 0.99, progress=stop, checkpoint=tmp_path / "ck", save_every=0, **kw)
    progress = json.loads((tmp_path / "ck" / "state.json").read_text())["progress"]
    assert progress["groups"] == 8 and progress["of"] == 680 // 50 and 0 < progress["pairs"] < 80
    capsys.readouterr()
    np.testing.assert_array_equal(dd.dedup_shards(path, 0.99, checkpoint=tmp_path / "ck", **kw), expected)
    assert f"resuming dedup after group 8 of {680 // 50}" in capsys.readouterr().out
    with pytest.raises(InputError, match=r"a checkpoint of another selection \(differs in threshold\)"):
        dd.dedup_shards(path, 0.95, checkpoint=tmp_path / "ck", **kw)
    # the selection job keeps its dedup's result beside its output: stopped in its ordering, it does not search again
    config = ms.SelectConfig(method="kcenter", k_max=100, seed=1, dedup=0.99)
    whole = ms.make_subset_across_processes(path, tmp_path / "whole", config, Comm(alone=True))
    with monkeypatch.context() as m:
        m.setattr(ms, "order_across_processes", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            ms.make_subset_across_processes(path, tmp_path / "job", config, Comm(alone=True))
    with monkeypatch.context() as m:
        m.setattr(dd, "_pairs_above", lambda *a: pytest.fail("searched again"))
        job = ms.make_subset_across_processes(path, tmp_path / "job", config, Comm(alone=True))
        np.testing.assert_array_equal(dd.dedup_shards(path, 0.99, checkpoint=tmp_path / "ck", **kw), expected)
    np.testing.assert_array_equal(job.order, whole.order)
    assert job.meta["dedup"] == whole.meta["dedup"] == {"threshold": 0.99, "kept": 600, "removed": 80}
    assert not (tmp_path / "job.checkpoint").exists()


def test_a_sweeps_selections_run_across_its_processes_where_the_job_maps_the_shards(emb, separated, tmp_path):
    import subsets.make_subset as ms

    script = tmp_path / "sweep_selection.py"  # the sweep's selection step under accelerate launch; the main process alone fails
    script.write_text(
        "import sys\nfrom pathlib import Path\nfrom accelerate import Accelerator\nimport subsets.make_subset as ms\n"
        "from distill.sweep import make_selection\nfrom subsets.shards import EmbeddingShards\n"
        "acc = Accelerator(cpu=True)\nms.make_subset = ms.load_embeddings = None\n"
        "kc = ms.SelectConfig(method='kcenter', k_max=300, seed=4)\n"
        "km = ms.SelectConfig(method='kmeans', k_max=300, seed=2, clusters=[24, 4], mapped=True)\n"
        "make_selection(EmbeddingShards(sys.argv[1]), Path(sys.argv[3]) / 'kcenter', kc, acc)\n"
        "make_selection(EmbeddingShards(sys.argv[2]), Path(sys.argv[3]) / 'kmeans', km, acc)\n"
        "acc.end_training()\n")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
           "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script), str(emb[0]), str(separated[0]),
           str(tmp_path / "two")]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=ROOT,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    kcenter = ms.make_subset(emb[0], tmp_path / "kcenter", ms.SelectConfig(method="kcenter", k_max=300, seed=4))
    kmeans = ms.make_subset(separated[0], tmp_path / "kmeans", ms.SelectConfig(method="kmeans", k_max=300, seed=2,
                                                                               clusters=[24, 4], mapped=True))
    for one in (kcenter, kmeans):
        two = json.loads((tmp_path / "two" / one.path.name / "manifest.json").read_text())
        assert two["hash"] == one.hash and two["coverage"] == one.meta["coverage"]


def test_a_damaged_shard_or_keys_txt_stops_the_job_across_processes_with_one_line(emb, tmp_path):
    import shutil

    import subsets.make_subset as ms
    from subsets.comm import Comm

    path, _ = emb
    config = ms.SelectConfig(method="random", k_max=20)
    edited = shutil.copytree(path, tmp_path / "edited")
    shard = edited / "emb-00002.safetensors"
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0xFF  # one vector changed: the file no longer has its recorded sha256
    shard.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"emb-00002.safetensors: content differs from the sha256 in meta.json"):
        ms.make_subset_across_processes(edited, tmp_path / "o1", config, Comm(alone=True))
    swapped = shutil.copytree(path, tmp_path / "swapped")
    keys = (swapped / "keys.txt").read_text().splitlines()
    keys[600], keys[601] = keys[601], keys[600]
    (swapped / "keys.txt").write_text("".join(k + "\n" for k in keys))
    with pytest.raises(InputError, match=r"keys.txt: line 601 is not the key the shards hold at that row"):
        ms.make_subset_across_processes(swapped, tmp_path / "o2", config, Comm(alone=True))
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


@pytest.fixture(scope="module")
def separated(tmp_path_factory):
    """1,200 vectors around 12 well-separated directions, in 6 shards of 200."""
    x, truth = clustered(1200, 32, centers=12, spread=0.05, seed=8)
    return write_embeddings(tmp_path_factory.mktemp("sep") / "e", x, shard_size=200), truth


def test_kmeans_over_mapped_shards_reaches_lloyds_fixed_point(separated):
    from subsets.distributed_kmeans import kmeans_blocks

    path, _ = separated
    shards = EmbeddingShards(path)
    blocks = [shards.map(s) for s in range(6)]
    centroids, labels, distance = kmeans_blocks(blocks, [s * 200 for s in range(6)], 1200, 24, seed=2)
    x = np.concatenate(blocks).astype(np.float64)
    d2 = ((x[:, None, :] - centroids[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(labels, d2.argmin(1))  # each row at its nearest centroid
    np.testing.assert_allclose(distance, np.sqrt(d2.min(1)), atol=1e-3)
    for c in np.unique(labels):  # each centroid the mean of its rows
        np.testing.assert_allclose(centroids[c], x[labels == c].mean(0), atol=1e-5)


@pytest.mark.parametrize("resample_steps", [0, 3])  # kmeans, kmeans-resampled
def test_distributed_kmeans_gives_the_one_process_assignments_and_order_for_1_2_and_3_processes(separated, tmp_path,
                                                                                              resample_steps):
    from subsets.comm import Comm
    from subsets.distributed_kmeans import kmeans_balanced_shards

    path, _ = separated
    expected = kmeans_balanced_shards(path, 300, seed=2, clusters=[24, 4], comm=Comm(alone=True),
                                      resample_steps=resample_steps)
    assert len(set(expected.tolist())) == 300
    for w in (1, 2, 3) if resample_steps == 0 else (2, 3):  # one process: the in-process order above
        res = launch_processes("subsets.distributed_kmeans", path, "--k", 300, "--seed", 2, "--clusters", "24,4",
                               "--resample-steps", resample_steps, "--out", tmp_path / f"order-{w}.npy", processes=w)
        assert res.returncode == 0, res.stderr[-3000:]
        np.testing.assert_array_equal(np.load(tmp_path / f"order-{w}.npy"), expected)
        assert len(re.findall(r"rank \d of \d: maps shards", res.stdout)) == w


def test_resampling_over_mapped_rows_ends_at_the_new_centroids_and_counts_its_passes(emb, tmp_path):
    from subsets.comm import Comm
    from subsets.distributed_kmeans import kmeans_passes, resampled_kmeans_blocks
    from subsets.shards import KeptRows

    path, _ = emb
    keep = np.setdiff1d(np.arange(1500), [760, 1240])  # rows a dedup kept: resampling picks rows of those rows
    blocks, starts, n = EmbeddingShards(path).process_blocks(Comm(alone=True), keep=keep)
    assert isinstance(blocks[0], KeptRows) and n == 1498
    seen = []
    centroids, labels, distance = resampled_kmeans_blocks(blocks, starts, n, 30, seed=1, niter=4, steps=2,
                                                          progress=seen.append)
    rows = np.concatenate([np.asarray(b) for b in blocks]).astype(np.float64)
    d2 = ((rows[:, None, :] - centroids[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(labels, d2.argmin(1))  # every kept row assigned to the last step's centroids
    np.testing.assert_allclose(distance, np.sqrt(d2.min(1)), atol=1e-3)
    assert seen == sorted(seen) and seen[-1] == kmeans_passes(n, 30, 4, 2) == 5 + 2 * 6  # the bar ends full
    plain = resampled_kmeans_blocks(blocks, starts, n, 30, seed=1, niter=4, steps=0)
    assert not np.allclose(plain[0], centroids)  # the steps moved the centroids


def test_select_kmeans_resampled_mapped_runs_the_job_across_processes_with_its_steps(emb, tmp_path):
    from distill.cli import main
    from subsets.comm import Comm
    from subsets.distributed_kmeans import kmeans_balanced_shards
    from subsets.manifest import read_manifest

    path, _ = emb
    args = ["subset", "select", "--embeddings", str(path), "--method", "kmeans-resampled", "--k-max", "100",
            "--seed", "4", "--clusters", "24,4", "--niter", "5", "--resample-steps", "2", "--mapped",
            "--out", str(tmp_path / "cli")]
    assert main(args) == 0
    m = read_manifest(tmp_path / "cli")
    assert m.meta["params"]["resample_steps"] == 2 and m.meta["params"]["mapped"] is True
    expected = kmeans_balanced_shards(path, 100, 4, [24, 4], 5, comm=Comm(alone=True), resample_steps=2)
    np.testing.assert_array_equal(m.order, expected)
    assert not np.array_equal(kmeans_balanced_shards(path, 100, 4, [24, 4], 5, comm=Comm(alone=True)), expected)
    assert main([*args[:-1], str(tmp_path / "bad"), "--resample-steps", "-1"]) == 2
    assert not (tmp_path / "bad").exists()


def test_a_stopped_kmeans_ordering_resumes_after_its_last_saved_pass_to_the_uninterrupted_order(emb, tmp_path,
                                                                                                  capsys):
    from subsets.comm import Comm
    from subsets.distributed_kmeans import kmeans_balanced_shards
    from subsets.make_subset import SelectConfig, make_subset_across_processes

    path, _ = emb  # overlapping clusters: Lloyd's still moves after 10 passes, so a centroid off by a bit would show
    expected = kmeans_balanced_shards(path, 300, seed=2, clusters=[24, 4], niter=10)
    saved = tmp_path / "saved"

    def stop(passes):  # as if the job were killed during pass 6
        if passes == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        kmeans_balanced_shards(path, 300, seed=2, clusters=[24, 4], niter=10, progress=stop, checkpoint=saved,
                               save_every=0)
    state = json.loads((saved / "state.json").read_text())
    assert state["progress"] == {"passes": 5}  # the last pass finished, one generation left, whole
    assert sorted(p.name for p in saved.iterdir()) == sorted(["state.json", f"centroids.g{state['generation']}.npy"])
    # saved by one process, resumed by two
    res = launch_processes("subsets.distributed_kmeans", path, "--k", 300, "--seed", 2, "--clusters", "24,4",
                           "--niter", 10, "--checkpoint", saved, "--out", tmp_path / "two.npy", processes=2)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming k-means after pass 5 of 10" in res.stdout
    np.testing.assert_array_equal(np.load(tmp_path / "two.npy"), expected)
    # another selection's checkpoint is refused, naming what differs: other passes, or a k-center ordering's
    with pytest.raises(InputError, match=r"a checkpoint of another selection \(differs in niter\)"):
        kmeans_balanced_shards(path, 300, seed=2, clusters=[24, 4], niter=12, checkpoint=saved)
    kcenter_shards(path, 10, seed=2, checkpoint=tmp_path / "kc", save_every=0)
    with pytest.raises(InputError, match=r"differs in .*ordering"):
        kmeans_balanced_shards(path, 300, seed=2, clusters=[24, 4], niter=10, checkpoint=tmp_path / "kc")
    # the selection job across processes saves beside its output, resumes, and removes the folder once written
    config = SelectConfig(method="kmeans", k_max=300, seed=2, clusters=[24, 4], niter=10)
    whole = make_subset_across_processes(path, tmp_path / "whole", config, Comm(alone=True)).order
    import subsets.checkpoint as checkpoint
    import subsets.distributed_kmeans as dkm

    passes, one_pass = [0], dkm._pass

    def killed_in_pass_8(blocks, centroids, device=None):
        passes[0] += 1
        if passes[0] == 8:
            raise KeyboardInterrupt
        return one_pass(blocks, centroids, device)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(checkpoint, "SAVE_EVERY", 0.0)
        m.setattr(dkm, "_pass", killed_in_pass_8)
        with pytest.raises(KeyboardInterrupt):
            make_subset_across_processes(path, tmp_path / "sub", config, Comm(alone=True))
    assert json.loads((checkpoint.checkpoint_folder(tmp_path / "sub") / "state.json").read_text())["progress"] == \
        {"passes": 7}
    capsys.readouterr()
    np.testing.assert_array_equal(make_subset_across_processes(path, tmp_path / "sub", config, Comm(alone=True)).order,
                                  whole)
    assert "resuming k-means after pass 7 of 10" in capsys.readouterr().out
    assert not checkpoint.checkpoint_folder(tmp_path / "sub").exists()


def test_products_on_a_torch_device_give_the_orders_and_assignments_of_the_cpu_path(emb, separated, monkeypatch):
    """The GPU path (`--device cuda`) is torch over the same chunks; run here on torch's CPU device, it must give
    numpy's k-center order and faiss's k-means assignments, whether the chunks stay on the device or not."""
    import subsets.distributed_kcenter as dk
    from subsets.distributed_kmeans import kmeans_balanced_shards, kmeans_blocks

    cpu = torch.device("cpu")
    path, _ = emb
    expected = kcenter_shards(path, 300, seed=4, batch=16)
    np.testing.assert_array_equal(kcenter_shards(path, 300, seed=4, batch=16, device=cpu), expected)
    monkeypatch.setattr(dk, "DENSE_BYTES", 0)  # chunks copied to the device at every pass
    np.testing.assert_array_equal(kcenter_shards(path, 300, seed=4, batch=16, device=cpu), expected)
    sep, _ = separated
    blocks = [EmbeddingShards(sep).map(s) for s in range(6)]
    starts = [s * 200 for s in range(6)]
    centroids, labels, distance = kmeans_blocks(blocks, starts, 1200, 24, seed=2)
    on_device = kmeans_blocks(blocks, starts, 1200, 24, seed=2, device=cpu)
    np.testing.assert_array_equal(on_device[1], labels)
    np.testing.assert_allclose(on_device[0], centroids, atol=1e-6)
    np.testing.assert_allclose(on_device[2], distance, atol=1e-3)
    np.testing.assert_array_equal(kmeans_balanced_shards(sep, 300, seed=2, clusters=[24, 4], device=cpu),
                                  kmeans_balanced_shards(sep, 300, seed=2, clusters=[24, 4]))


def test_select_with_device_runs_the_job_across_processes_with_its_products_there(separated, tmp_path, monkeypatch):
    import subsets.device as sd
    import subsets.make_subset as ms

    path, _ = separated
    if not torch.cuda.is_available():  # this machine: one line, before any work
        with pytest.raises(InputError, match=r"--device cuda: this machine has no CUDA GPU"):
            ms.make_subset(path, tmp_path / "cuda", ms.SelectConfig(method="kmeans", k_max=50, device="cuda"))
        assert not (tmp_path / "cuda").exists()
    for bad in ("tpu", "cpu:0"):  # nor a torch device the job has no path for
        with pytest.raises(InputError, match=rf"--device {bad}: unknown \(choose from cpu, cuda, or cuda:N"):
            ms.make_subset(path, tmp_path / "bad", ms.SelectConfig(k_max=50, device=bad))
    # the job as `--device cuda` runs it, with torch's CPU device standing in for the GPU
    used = []
    monkeypatch.setattr(ms, "check_device", lambda name: None)
    monkeypatch.setattr(ms, "resolve_device", lambda name: used.append(name) or torch.device("cpu"))
    for name in ("nearest", "pairs_above", "min_distances"):
        monkeypatch.setattr(sd, name, lambda *a, real=getattr(sd, name), name=name: used.append(name) or real(*a))
    config = ms.SelectConfig(method="kmeans", k_max=50, seed=2, clusters=[24, 4], dedup=0.999)
    on_device = ms.make_subset(path, tmp_path / "dev", replace(config, device="gpu"))
    # dedup, then the ordering, then the coverage report's nearest-pick search (as costly as k-center's), on the device
    assert used[0] == "gpu" and {"pairs_above", "nearest", "min_distances"} <= set(used)
    assert on_device.meta["params"]["device"] == "gpu"
    across = ms.make_subset_across_processes(path, tmp_path / "cpu", config, ms.Comm(alone=True))
    np.testing.assert_array_equal(on_device.order, across.order)
    # the same report to float32 rounding; labels and corpus clusters (found on the CPU on any device) exactly
    for dev, cpu in zip(on_device.meta["coverage"], across.meta["coverage"], strict=True):
        assert dev.keys() == cpu.keys()
        for key in dev:
            assert dev[key] == pytest.approx(cpu[key], rel=1e-5) if key.endswith("_dist") else dev[key] == cpu[key]


def test_the_device_products_run_in_full_float32_whatever_the_process_set(monkeypatch):
    """TF32 (`high`) would round distances to about 1e-3: enough to reorder near picks."""
    from subsets import device as sd

    seen = []
    real = torch.addmm
    monkeypatch.setattr(torch, "addmm", lambda *a, **k: seen.append(torch.get_float32_matmul_precision()) or real(*a, **k))
    torch.set_float32_matmul_precision("high")
    try:
        x = torch.randn(8, 4)
        sd.min_distances(x, x, (x * x).sum(1), (x * x).sum(1))
        sd.nearest(x, x, (x * x).sum(1))
        assert seen == ["highest", "highest"] and torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision("highest")
