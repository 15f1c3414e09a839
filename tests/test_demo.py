"""The demo job and the README's promises."""

import re

from rich.console import Console

from distill.demo import DemoConfig, run_demo
from subsets.manifest import read_manifest

from .helpers import ROOT, write_image_folder


def test_demo_runs_end_to_end_exports_the_best_student_and_reuses_its_work(tmp_path, image_folder):
    import json

    import timm

    train = DemoConfig().train | {"steps": 3, "batch_size": 8, "workers": 0}
    # held out from the corpus (the demo set's first 120 test images): 200 of its train images, where the demo's
    # 2,000 would take most of the test's time; runs in this process (side by side: tests/test_sweep.py)
    held_out = write_image_folder(tmp_path / "held-out", 200, split="builtin:cifar10-demo")
    config = DemoConfig(out=tmp_path / "demo", source=str(image_folder), test_source=str(held_out),
                        methods=("kcenter", "random"), ks=(20, 40), train=train, parallel_runs=1)
    console = Console(record=True, width=120)
    paths = run_demo(config, console=console)
    text = console.export_text()
    for words in ("radius", "k-NN top-1", "teacher: mobilenetv2_imagenet", "untrained student", "best student by k-NN",
                  "comparison_plot"):
        assert words in text
    for method in ("kcenter", "random"):
        assert len(read_manifest(tmp_path / "demo" / "subsets" / f"{method}-s0").order) == 40
    best = max(paths["runs"], key=lambda r: json.loads((r / "eval.json").read_text())["student"]["knn_top1"])
    assert f"best student by k-NN: {best.name}" in text
    exported = timm.create_model(f"local-dir:{paths['best_student']}", pretrained=True).eval()  # vit_scott
    assert exported.num_features == 192
    # loaded by timm, the exported student reproduces the k-NN accuracy its evaluation reported
    from distill.evaluate import _data, extract, knn_accuracy

    ev = json.loads((best / "eval.json").read_text())
    eval_config = config.sweep().eval_config()
    cfg = timm.data.resolve_data_config(model=exported)
    train_f, test_f = (extract(exported, _data(eval_config, w), cfg["input_size"][-1], cfg["mean"], cfg["std"], 256, "cpu",
                               w) for w in ("train", "test"))
    tr, te = _data(eval_config, "train"), _data(eval_config, "test")
    assert knn_accuracy(train_f, tr.labels, test_f, te.labels, tr.classes) == ev["student"]["knn_top1"]
    assert paths["comparison_plot"].stat().st_size > 10_000
    stamp = (best / "run.json").stat().st_mtime_ns
    again = Console(record=True, width=120)
    run_demo(config, console=again)
    assert "done, skipped" in again.export_text() and (best / "run.json").stat().st_mtime_ns == stamp


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\s+```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2 and "distill demo" in commands[0] and "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    for command in commands:
        assert command in ci
