"""The demo job and the README's promises."""

import re

from rich.console import Console

from distill.demo import DemoConfig, run_demo
from subsets.manifest import read_manifest

from .helpers import ROOT


def test_demo_runs_the_subset_stage_end_to_end_and_reuses_its_work(tmp_path, image_folder):
    config = DemoConfig(out=tmp_path / "demo", source=str(image_folder), k_max=50)
    console = Console(record=True, width=120)
    paths = run_demo(config, console=console)
    text = console.export_text()
    for metric in ("radius", "mean", "labels", "clusters"):
        assert metric in text
    assert paths["coverage_plot"].stat().st_size > 10_000
    for method in ("kcenter", "kmeans", "random"):
        m = read_manifest(tmp_path / "demo" / "subsets" / method)
        assert len(m.order) == 50 and [r["k"] for r in m.meta["coverage"]] == [10, 20, 50]
    before = (tmp_path / "demo" / "subsets" / "kcenter" / "order.npy").stat().st_mtime_ns
    run_demo(config, console=Console(record=True))
    assert (tmp_path / "demo" / "subsets" / "kcenter" / "order.npy").stat().st_mtime_ns == before


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\s+```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2 and "distill demo" in commands[0] and "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    for command in commands:
        assert command in ci
