"""The demo job and the README's promises."""

import re

from rich.console import Console

from distill.demo import DemoConfig, run_demo
from subsets.manifest import read_manifest

from .helpers import ROOT


def test_demo_runs_end_to_end_exports_the_best_student_and_reuses_its_work(tmp_path, image_folder):
    import json

    import timm

    train = DemoConfig().train | {"steps": 3, "batch_size": 8, "workers": 0}
    config = DemoConfig(out=tmp_path / "demo", source=str(image_folder), methods=("kcenter", "random"), ks=(20, 40),
                        train=train)
    console = Console(record=True, width=120)
    paths = run_demo(config, console=console)
    text = console.export_text()
    for words in ("radius", "k-NN top-1", "teacher mobilenetv2_imagenet", "best student by k-NN", "comparison_plot"):
        assert words in text
    for method in ("kcenter", "random"):
        assert len(read_manifest(tmp_path / "demo" / "subsets" / method).order) == 40
    best = max(paths["runs"], key=lambda r: json.loads((r / "eval.json").read_text())["student"]["knn_top1"])
    assert f"best student by k-NN: {best.name}" in text
    assert timm.create_model(f"local-dir:{paths['best_student']}", pretrained=True).num_features == 192
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
