"""The documentation's links: every relative link in README.md and docs/ reaches a file, and its #anchor a heading."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def heading_anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    anchors = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        m = re.match(r"#{1,6} (.*)", line)
        if m:
            anchors.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return anchors


def relative_links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_every_relative_link_reaches_a_file_and_its_heading():
    broken = []
    for page in PAGES:
        for target in relative_links(page):
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in heading_anchors(file):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_every_page_of_docs_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in relative_links(ROOT / "README.md")}
    orphans = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not orphans, f"docs/ pages the README does not link: {orphans}"


def test_the_link_check_sees_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title here\n\n[ok](#title-here) [gone](missing.md) [bad](#nothing)\n```\n[x](fenced.md)\n```\n")
    assert relative_links(page) == ["#title-here", "missing.md", "#nothing"]
    assert heading_anchors(page) == {"title-here"}


def test_the_notebook_example_runs_end_to_end_on_a_small_corpus(tmp_path, image_folder, capsys):
    """docs/python.md's code as written, on the tests' 120-image folder with fewer images and steps."""
    blocks = re.findall(r"^```python\n(.*?)^```", (ROOT / "docs" / "python.md").read_text(), re.S | re.M)
    from .helpers import write_image_folder

    held_out = write_image_folder(tmp_path / "held-out", 60, split="builtin:cifar10-demo")  # not the corpus's images
    small = {r'SOURCE, TEST = "builtin:cifar10-demo", "builtin:cifar10-demo-test"':
             f'SOURCE, TEST = "{image_folder}", "{held_out}"', "K, STEPS = 300, 2400": "K, STEPS = 40, 20",
             "notebook-out": f"{tmp_path}/notebook-out"}
    code = "\n".join(blocks)
    for old, new in small.items():
        assert old in code, old
        code = code.replace(old, new)
    namespace = {}
    exec(compile(code, "docs/python.md", "exec"), namespace)  # noqa: S102 - our own documentation
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed if " floor " in line] == ["kcenter", "random"]
    assert (tmp_path / "notebook-out" / "comparison" / "results.md").exists()
    assert namespace["student"].num_features == 192  # the exported student (the demo's ViT-Ti), loaded by timm
