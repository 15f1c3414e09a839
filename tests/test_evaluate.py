"""Evaluation metrics on constructed features (k-NN and the linear probe find separable classes, not shuffled ones),
and what models and answers cost (MACs counted, attention on the CPU included; the compute account of a run)."""

import json

import numpy as np
import torch

from distill.evaluate import knn_accuracy, probe_accuracy

from .helpers import clustered


def _split(x, y):
    x, y = torch.from_numpy(x), torch.from_numpy(y).long()
    return x[::2], y[::2], x[1::2], y[1::2]


def test_knn_and_probe_are_perfect_on_separable_classes_and_near_chance_on_shuffled_labels():
    x, y = clustered(2000, 64, centers=10, spread=0.05, seed=0)
    tr, tr_y, te, te_y = _split(x, y)
    assert knn_accuracy(tr, tr_y, te, te_y, classes=10) == 1.0
    assert probe_accuracy(tr, tr_y, te, te_y, classes=10) == 1.0
    shuffled = torch.from_numpy(np.random.default_rng(1).permutation(tr_y.numpy()))
    assert abs(knn_accuracy(tr, shuffled, te, te_y, classes=10) - 0.1) < 0.05
    assert abs(probe_accuracy(tr, shuffled, te, te_y, classes=10) - 0.1) < 0.05


def test_knn_votes_are_weighted_by_similarity():
    # Two far neighbours of class 1 against one exact match of class 0: the temperature makes the match win.
    train = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.0]])
    assert knn_accuracy(train, labels, query, torch.tensor([0]), classes=2, k=3, temperature=0.07) == 1.0
    assert knn_accuracy(train, labels, query, torch.tensor([1]), classes=2, k=3, temperature=100.0) == 1.0


def test_model_cost_counts_parameters_and_macs_as_published_and_by_hand():
    from distill.model_cost import amount, cost_words, model_cost, times
    from teachers import load_teacher

    # torchvision's MobileNetV2 at 224 px: 300 M multiply-adds (its paper, Table 3); 2.22 M parameters without
    # the 1,000-class classifier (3.50 M with it)
    cost = model_cost(load_teacher("mobilenetv2_imagenet", resolution=224), 224)
    assert 295e6 < cost["macs"] < 305e6 and 2.2e6 < cost["params"] < 2.25e6
    assert cost_words(cost) == "2.22 M parameters, 299 M MACs per image at 224 px"
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(), torch.nn.Linear(8 * 30 * 30, 10))
    by_hand = 8 * 3 * 9 * 30 * 30 + 8 * 30 * 30 * 10  # each output value: one MAC per weight it reads
    assert model_cost(conv, 32) == {"params": sum(p.numel() for p in conv.parameters()), "macs": by_hand, "img_size": 32}
    assert conv.training  # left as it was found
    assert (amount(999), amount(1234), amount(56_789_000), amount(2.5e9)) == ("999", "1.23 k", "56.8 M", "2.50 G")
    assert (times(0.8332), times(3.14), times(24.4), times(1234.5)) == ("0.83x", "3.1x", "24x", "1,234x")


def test_the_scale_projection_counts_on_meta_models_what_real_ones_count():
    """benchmarks/compute.py counts architectures built on the meta device (no weights, any size): the same MACs as
    the real model, and a training image about three forward passes."""
    import importlib.util

    import timm

    from distill.model_cost import model_cost

    from .helpers import ROOT

    spec = importlib.util.spec_from_file_location("compute_bench", ROOT / "benchmarks" / "compute.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    real = timm.create_model("vit_tiny_patch16_224", img_size=64, num_classes=0)
    forward = bench.forward_macs("vit_tiny_patch16_224", 64)
    assert forward == model_cost(real, 64)["macs"]
    assert 2.9 < bench.training_macs("vit_tiny_patch16_224", 64) / forward < 3.1  # backward: twice the forward
    assert bench.target_bytes("vit_tiny_patch16_224", 64) == (1 + 16) * 192 * 2  # class + 4x4 patch tokens, fp16


def test_attention_on_the_cpu_counts_as_its_products_do_forward_and_backward():
    """torch's FlopCounterMode knows CUDA's fused attention kernels, not the CPU's: a ViT's attention products counted
    as nothing on a CPU. Counted with `subsets.macs`, the fused kernel counts what the unfused matrix products do."""
    import timm

    from distill.model_cost import model_cost
    from subsets.macs import mac_counter, macs

    vit = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1, num_classes=0)
    fused = model_cost(vit, 32)["macs"]
    vit.blocks[0].attn.fused_attn = False  # timm's own q @ k^T, softmax, @ v
    assert model_cost(vit, 32)["macs"] == fused
    vit.blocks[0].attn.fused_attn = True
    counter = mac_counter()
    with counter:
        vit(torch.zeros(1, 3, 32, 32)).sum().backward()
    backward = {str(op): n for op, n in counter.get_flop_counts()["Global"].items() if "backward" in str(op)}
    assert backward["aten._scaled_dot_product_flash_attention_for_cpu_backward"] > 0  # the backward's products too
    assert macs(counter) > 2.9 * fused


def test_selection_is_charged_to_the_orderings_that_read_the_embeddings_and_unknown_is_never_zero(tmp_path):
    from distill.compute_account import run_compute, selection_macs

    emb = tmp_path / "emb"
    emb.mkdir()
    (emb / "meta.json").write_text(json.dumps({"count": 1000, "encoder_cost": {"macs": 7, "img_size": 32}}))

    def record(method, params=None, dedup=None, full=False, name="s"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps(
            {"method": method, "params": params or {"method": method}, "dedup": dedup, "embeddings": {"path": str(emb)}}))
        return {"subset": {"path": str(tmp_path / name), "full": full, "k": 10}}

    assert selection_macs(record("kcenter", name="kc")) == 7000  # the encoder over the 1,000 corpus images
    assert selection_macs(record("random", name="r")) == 0  # random reads no embeddings
    assert selection_macs(record("class-balanced", name="cb")) == 0  # nor does the labels' ordering
    assert selection_macs(record("random", dedup={"removed": 3}, name="rd")) == 7000  # unless dedup read them
    assert selection_macs(record("kcenter", full=True, name="f")) == 0  # the full corpus needs no selection
    assert selection_macs(record("mine", params={"imported": "/x/keys.txt"}, name="i")) is None  # made elsewhere
    assert selection_macs({"subset": {"path": str(tmp_path / "gone"), "full": False, "k": 10}}) is None
    (emb / "meta.json").write_text(json.dumps({"count": 1000}))  # embeddings made before costs were counted
    assert selection_macs(record("kmeans", name="km")) is None
    # a part not known leaves the total unknown, never a smaller figure
    run = record("random", name="run") | {"mode": "cached", "teachers": [{"name": "t"}], "samples_seen": 40,
                                          "epochs": 2.0, "macs_per_step": 5, "steps": 4}
    assert run_compute(run, [{"macs": 3}]) == {"selection": 0, "teacher": 60, "training": 20, "total": 80}
    assert run_compute(run, [None])["total"] is None
    assert run_compute(run | {"macs_per_step": None}, [{"macs": 3}])["total"] is None
    # two caches of one teacher at two resolutions: each view charged at its own cost
    two = run | {"teachers": [{"name": "t"}, {"name": "t"}]}
    assert run_compute(two, [{"macs": 3}, {"macs": 5}])["teacher"] == (3 + 5) * 20


def test_a_teacher_is_named_with_its_resolution_only_where_one_table_holds_it_at_two():
    from distill.teacher_labels import comparison_labels, teacher_labels

    assert teacher_labels([("a", 224), ("b", 224)]) == ["a", "b"]
    assert teacher_labels([("a", 224), ("a", 448), ("b", 224)]) == ["a at 224 px", "a at 448 px", "b"]
    assert teacher_labels([("a", 224), ("a", 224)]) == ["a", "a #2"]  # no label names two entries
    # across a comparison's runs: each run's key mapped to one label per (name, resolution); an eval.json made
    # before resolutions were recorded keeps its key
    old = {"teachers": {"a": {"knn_top1": 0.5}}}
    one = {"teachers": {"a": {"name": "a", "resolution": 224}, "b": None}}
    two = {"teachers": {"a at 224 px": {"name": "a", "resolution": 224}, "a at 448 px": {"name": "a", "resolution": 448}}}
    assert comparison_labels([one, two]) == [{"a": "a at 224 px", "b": "b"},
                                             {"a at 224 px": "a at 224 px", "a at 448 px": "a at 448 px"}]
    assert comparison_labels([one]) == [{"a": "a", "b": "b"}]
    assert comparison_labels([old, one]) == [{"a": "a"}, {"a": "a at 224 px", "b": "b"}]  # nothing tells its resolution
    # the runs' records tell it: one teacher at one resolution keeps one ceiling row beside runs evaluated later
    # (a comparison of older and newer runs of one study showed the teacher twice), and at another resolution is
    # named with it; an entry left empty (the teacher could not be loaded) is named from the record too
    record = {"teachers": [{"name": "a", "resolution": 224}, {"name": "b", "resolution": 224}]}
    assert comparison_labels([old, one], [{"teachers": [{"name": "a", "resolution": 224}]}, record]) == \
        [{"a": "a"}, {"a": "a", "b": "b"}]
    assert comparison_labels([old, one], [{"teachers": [{"name": "a", "resolution": 448}]}, record]) == \
        [{"a": "a at 448 px"}, {"a": "a at 224 px", "b": "b"}]
    unloaded = {"teachers": {"a at 224 px": None, "a at 448 px": {"name": "a", "resolution": 448}}}
    assert comparison_labels([unloaded, one], [{"teachers": [{"name": "a", "resolution": 224},
                                                             {"name": "a", "resolution": 448}]}, record]) == \
        [{"a at 224 px": "a at 224 px", "a at 448 px": "a at 448 px"}, {"a": "a at 224 px", "b": "b"}]


def test_test_labels_follow_the_train_sources_class_names_where_the_folders_differ(tmp_path, image_folder):
    """A test folder without one of the train folder's classes numbers its classes otherwise; its labels are read by
    name, so every image keeps its class. A class the train source lacks is refused: nothing could predict it."""
    import shutil

    import pytest

    from distill.eval_config import EvalConfig
    from distill.evaluate import _data
    from subsets.errors import InputError
    from subsets.sources import open_source

    from .helpers import write_image_folder

    test = write_image_folder(tmp_path / "test", 40, split="builtin:cifar10-demo")
    names = sorted(p.name for p in test.iterdir())
    shutil.rmtree(test / names[0])  # the first class gone: every other class's number moves down by one
    config = EvalConfig(train_source=str(image_folder), test_source=str(test))
    labels = _data(config, "test").labels.tolist()
    by_index = open_source(str(test)).index()
    train_names = open_source(str(image_folder)).classes
    assert [train_names[label] for label in labels] == [key.split("/")[0] for key, _ in by_index]
    assert labels != [label for _, label in by_index]  # the folder's own numbering would have been wrong
    zebra = shutil.copytree(test, tmp_path / "with-zebra")  # another path: sets are read once per process and path
    (zebra / "zebra").mkdir()
    shutil.copy(next((zebra / names[1]).iterdir()), zebra / "zebra" / "z.png")
    with pytest.raises(InputError, match="class 'zebra' is not among the classes of"):
        EvalConfig(train_source=str(image_folder), test_source=str(zebra)).eval_set()
