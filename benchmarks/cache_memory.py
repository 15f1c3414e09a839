"""Peak memory of a caching job against k: does it stay flat when the images come from tar shards?

    python benchmarks/cache_memory.py                 # k = 1,000 and 10,000; a plain .tar and a .tar.gz corpus
    python benchmarks/cache_memory.py --ks 500 5000   # quicker

The corpus: the 10,000 demo training images, upscaled to 128 px PNGs (about 17 KiB each, so k images' bytes are
visible in the process's memory), written once as one uncompressed tar, as one .tar.gz and as a Hugging Face data
set saved to disk (with the tar's keys and labels: the same corpus, so it shares the tar's subset). Each caching job
(MobileNetV2 at 32 px, 1 view, the first k of a random subset) runs in its own process; its peak RSS is what the
kernel reports for it, and its peak anonymous RSS (sampled every 20 ms) what it holds itself, without the pages of
memory-mapped files, which the kernel drops under pressure. A plain tar is read through an index of member offsets
(one batch's bytes at a time); a .tar.gz shard is read through once, its wanted images spilled to a temporary file
and read back by offset; the Hugging Face data set is read row by row from its memory-mapped Arrow files.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This folder's select.py would shadow the standard library's `select`, which subprocess needs: drop the folder first.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse  # noqa: E402
import gzip  # noqa: E402
import io  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import tarfile  # noqa: E402

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

CHILD = """
import json, sys, time
from pathlib import Path
from subsets.manifest import read_manifest
from subsets.sources import open_source
from teachers import load_teacher
from teachers.cache import CacheConfig, cache_targets
from teachers.stats import StatsConfig
from teachers.views import ViewPolicy
import threading

def status_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

peak_anon = 0
def sample_anon():
    global peak_anon
    while True:
        peak_anon = max(peak_anon, status_kib("RssAnon"))
        time.sleep(0.02)
threading.Thread(target=sample_anon, daemon=True).start()
source, subset, out, k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
start = time.perf_counter()
cache_targets(open_source(source), read_manifest(subset), load_teacher("mobilenetv2_imagenet", resolution=32), Path(out),
              k, CacheConfig(views=ViewPolicy(views=1), stats=StatsConfig(samples=100)))
peak = status_kib("VmHWM")  # this program's own peak; ru_maxrss starts at its parent's RSS at fork
print(json.dumps({"seconds": time.perf_counter() - start, "peak_anon_mib": peak_anon / 1024, "peak_mib": peak / 1024}))
"""


def write_hf_copy(work: Path, plain: Path) -> Path:
    """The tar's images, keys and labels as a Hugging Face data set saved to disk (needs the hf extra)."""
    import datasets

    from subsets.sources import open_source

    out = work / "corpus-hf"
    if not (out / "dataset_info.json").exists():
        source = open_source(str(plain))
        rows = {"image": [], "label": [], "key": []}
        for r in source.records():
            rows["image"].append({"bytes": r.read(), "path": None})
            rows["label"].append(r.label)
            rows["key"].append(r.key)
        features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64"),
                                      "key": datasets.Value("string")})
        datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(out))
    return out


def write_corpus(work: Path, n: int) -> tuple[Path, Path, int]:
    from subsets.sources import open_source

    plain, packed = work / "corpus-000000.tar", work / "corpus-000000.tar.gz"
    image_bytes = 0
    if not plain.exists():
        with tarfile.open(plain, "w") as tar:
            for key, image, label in itertools.islice(open_source("builtin:cifar10-demo").iter_images(), n):
                buf = io.BytesIO()
                image.resize((128, 128)).save(buf, format="PNG")
                for name, payload in ((f"{key}.png", buf.getvalue()), (f"{key}.cls", str(label).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
        packed.write_bytes(gzip.compress(plain.read_bytes(), compresslevel=1))
    with tarfile.open(plain) as tar:
        image_bytes = sum(m.size for m in tar if m.name.endswith(".png"))
    return plain, packed, image_bytes


def subset_of(work: Path, source: Path, k_max: int) -> Path:
    from distill.encoders import resolve_encoder
    from subsets.embed import EmbedConfig, embed_corpus
    from subsets.make_subset import SelectConfig, make_subset
    from subsets.sources import open_source

    out = work / f"subset-{source.name}"
    if not (out / "manifest.json").exists():
        emb = embed_corpus(open_source(str(source)), resolve_encoder(resolution=32), work / f"emb-{source.name}",
                           EmbedConfig(batch_size=256))
        make_subset(emb, out, SelectConfig(method="random", k_max=k_max, report_k=[k_max]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ks", type=int, nargs="+", default=[1000, 10_000])
    p.add_argument("--work", type=Path, default=Path("/tmp/bench-cache-memory"))
    a = p.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    console = Console(width=120)
    plain, packed, image_bytes = write_corpus(a.work, max(a.ks))
    per_image = image_bytes / max(a.ks)
    table = Table(title="caching job peak RSS against k (MobileNetV2 at 32 px, 1 view; images: 128 px PNG, "
                        f"{per_image / 1024:.0f} KiB each)")
    for col in ("source", "k", "images' bytes MiB", "peak RSS MiB", "peak anonymous MiB", "seconds"):
        table.add_column(col, justify="left" if col == "source" else "right")
    hf = write_hf_copy(a.work, plain)
    sources = [(plain.name, str(plain), plain, "tar"), (packed.name, str(packed), packed, "tar-gz"),
               ("Hugging Face (save_to_disk)", f"hf:{hf}?label=label&key=key", plain, "hf")]  # the tar's corpus and subset
    for name, spec, subset_from, tag in sources:
        subset = subset_of(a.work, subset_from, max(a.ks))
        for k in a.ks:
            out = a.work / f"targets-{tag}-{k}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            res = subprocess.run([sys.executable, "-c", CHILD, spec, str(subset), str(out), str(k)],
                                 capture_output=True, text=True)
            if res.returncode:
                raise SystemExit(res.stderr[-2000:])
            r = json.loads(res.stdout.strip().splitlines()[-1])
            table.add_row(name, f"{k:,}", f"{k * per_image / 2**20:,.0f}", f"{r['peak_mib']:,.0f}",
                          f"{r['peak_anon_mib']:,.0f}", f"{r['seconds']:.0f}")
            console.print(f"{name} k = {k:,}: peak {r['peak_mib']:,.0f} MiB ({r['peak_anon_mib']:,.0f} anonymous), "
                          f"{r['seconds']:.0f} s")
    console.print(table)


if __name__ == "__main__":
    main()
