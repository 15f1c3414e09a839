"""One GPU check: every path that only a GPU runs, timed, in one command (issue 15; a few minutes on one H200).

    python benchmarks/gpu.py                      # on CUDA: the sizes below
    python benchmarks/gpu.py --device cpu --quick # the same code on small sizes (checks the script, not the GPU; minutes)

1. attention: xformers (where installed) against SDPA against the naive matmul-softmax, forward + backward under
   bf16 at 197, 257 and 1,025 tokens (ViT-S heads: 6 x 64); the goal is the fused kernels >= 1.5x naive at 197. And
   what the compute account counts of each kernel (xformers' is expected uncounted: docs/evaluation.md).
2. a bf16 training step of a ViT-S/16 student at 224 px: with the heads and losses of cached targets (a 16x16
   map, as DINOv2-B/14's), against the student alone (its forward, a trivial loss, backward and AdamW).
3. bf16 teacher caching: the offline MobileNetV2 teacher's targets at 224 px, bf16 autocast against fp32.
4. k-means: faiss.Kmeans on the GPU (faiss-gpu, where installed) against the CPU, and the selection job's Lloyd's
   k-means (`distributed_kmeans`, `--device cuda`) with torch on the GPU against faiss on the CPU, 10 iterations:
   time, and the share of equal assignments.
5. the selection job's exact greedy k-center (`distributed_kcenter`, `--device cuda`) with its products on the GPU
   against numpy on the CPU: time, and how long a prefix of the two orders agrees.
6. the whole `distill subset select` job (kcenter and kmeans) with `--device cuda` against `--device cpu`.

Each section prints a table; a section that cannot run on this machine says why and the others go on.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

console = Console(width=130)


def timed(fn, device: torch.device, repeat: int) -> float:
    """Median seconds of fn() over `repeat` runs after one warm-up, synchronising the device."""
    fn()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def attention(device: torch.device, quick: bool) -> None:
    from students.attention import attend, xformers_available

    backends = (["xformers"] if device.type == "cuda" and xformers_available(str(device)) else []) + ["sdpa", "naive"]
    fused = [b for b in backends if b != "naive"]
    table = Table(title=f"attention forward + backward, bf16, batch {8 if quick else 64} x 6 heads x 64 (ms)")
    for col in ["tokens"] + backends + [f"{b} vs naive" for b in fused] + [f"{b} max |out - naive|" for b in fused]:
        table.add_column(col, justify="right")
    for n in (197, 257, 1025):
        q, k, v = (torch.randn(8 if quick else 64, 6, n, 64, device=device, dtype=torch.bfloat16, requires_grad=True)
                   for _ in range(3))
        ms = {}
        for b in backends:
            def step():
                attend(q, k, v, b).float().sum().backward()
            ms[b] = 1000 * timed(step, device, 3 if quick else 20)
        with torch.no_grad():  # a fast kernel is only worth having if it computes the same attention
            naive = attend(q, k, v, "naive").float()
            diffs = [(attend(q, k, v, b).float() - naive).abs().max().item() for b in fused]
        table.add_row(str(n), *(f"{ms[b]:.2f}" for b in backends), *(f"{ms['naive'] / ms[b]:.2f}x" for b in fused),
                      *(f"{d:.1e}" for d in diffs))
        if n == 197 and device.type == "cuda":
            on_gpu = {b: kernel_ms(lambda b=b: attend(q, k, v, b).float().sum().backward()) for b in backends}
            table.add_row("197, kernels alone", *(f"{on_gpu[b]:.2f}" for b in backends),
                          *("" for _ in fused), *("" for _ in fused))
    if "xformers" not in backends:
        table.caption = ("xformers: not installed, no CUDA, or no kernels for this torch and GPU "
                         "(pip install '.\\[gpu]' on a CUDA machine, a wheel built for its torch)")
    else:
        at_197 = torch.zeros(8, 197, 6, 64, device=device, dtype=torch.bfloat16, requires_grad=True)
        table.caption = f"xformers' kernels at 197 tokens: {xformers_kernels(at_197)}"
    console.print(table)
    attention_counted(backends, device, quick)


def kernel_ms(fn, repeat: int = 10) -> float:
    """Milliseconds a call of fn() keeps the GPU busy: the profiler's sum of its kernels and copies, without the
    host's time between them (a gap between a call's wall time and this is the host launching work, not the GPU)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    try:
        fn()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(repeat):
                fn()
            torch.cuda.synchronize()
        return sum(e.device_time_total for e in prof.events() if e.device_type == DeviceType.CUDA) / 1000 / repeat
    except Exception:  # a profiler that cannot see the GPU must not take the section's timings with it
        return float("nan")


def xformers_kernels(q: torch.Tensor) -> str:
    """The kernels xformers' dispatcher picks for these [B, N, heads, head_dim] inputs, forward and backward: a name
    ending in -pt is PyTorch's own kernel (one SDPA may run too) behind xformers' dispatcher."""
    try:
        from xformers.ops import fmha

        inputs = fmha.Inputs(q, q, q)
        return f"forward {fmha.dispatch._dispatch_fw(inputs, True).NAME}, backward " \
               f"{fmha.dispatch._dispatch_bw(inputs, varlen_lse_packed=None).NAME}"
    except Exception as e:  # a private API: its name is a footnote, not worth failing the section for
        return f"unknown ({type(e).__name__})"


def attention_counted(backends: list[str], device: torch.device, quick: bool) -> None:
    """What the compute account (`subsets.macs`) counts for one attention forward + backward per backend: the
    naive products are counted one by one; a fused kernel torch's counter does not know counts as nothing."""
    from distill.model_cost import amount
    from students.attention import attend
    from subsets.macs import mac_counter, macs

    q, k, v = (torch.randn(8 if quick else 64, 6, 197, 64, device=device, dtype=torch.bfloat16, requires_grad=True)
               for _ in range(3))
    table = Table(title="MACs counted of it at 197 tokens")
    for b in backends:
        table.add_column(b, justify="right")
    counted = []
    for b in backends:
        counter = mac_counter()
        with counter:
            attend(q, k, v, b).float().sum().backward()
        counted.append(amount(macs(counter)) if macs(counter) else "0 (not counted)")
    table.add_row(*counted)
    console.print(table)


def training_step(device: torch.device, quick: bool) -> None:
    from distill.data import TeacherTargets
    from distill.model import DistillModel, make_optimizer
    from students import StudentSpec, set_attention

    batch = 8 if quick else 128
    spec = StudentSpec("vit_small_patch16_224", img_size=224, patch_size=16)
    info = {"name": "synthetic-vitb14", "token_dim": 768, "embed_dim": None}
    model = DistillModel(spec, [TeacherTargets("t", info, 256)], {"token": 1.0, "feature": 1.0}, "cosine").to(device)
    set_attention(model.student, "auto", device)
    optimizer = make_optimizer(model, 1e-4, 0.05, device)
    images = torch.randn(batch, 3, 224, 224, device=device)
    targets = {"t": {"cls": torch.randn(batch, 768, device=device), "patch": torch.randn(batch, 256, 768, device=device)}}

    def with_targets():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(images, None, targets)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def student_only():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model.student(images)["cls"].float().pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    table = Table(title=f"bf16 training step, ViT-S/16 at 224 px, batch {batch}")
    for col in ("attention", "regime", "ms / step", "images / s"):
        table.add_column(col, justify="right")
    from students.attention import xformers_available

    for attention_backend in ["sdpa"] + (["xformers"] if xformers_available(str(device)) else []):  # auto is SDPA
        set_attention(model.student, attention_backend, device)
        for name, fn in (("student alone", student_only), ("with cached targets (token + feature)", with_targets)):
            s = timed(fn, device, 2 if quick else 20)
            table.add_row(attention_backend, name, f"{1000 * s:.1f}", f"{batch / s:,.0f}")
    console.print(table)


def teacher_caching(device: torch.device, quick: bool) -> None:
    from teachers import load_teacher
    from teachers.cache import teacher_targets

    batch = 8 if quick else 256
    teacher = load_teacher("mobilenetv2_imagenet", resolution=224).to(device).eval()
    images = torch.randn(batch, 3, 224, 224, device=device)
    table = Table(title=f"teacher targets, MobileNetV2 at 224 px, batch {batch}")
    for col in ("precision", "ms / batch", "views / s"):
        table.add_column(col, justify="right")
    # a teacher's forward enters its own autocast (bf16 on a GPU: what caching and online targets run); fp32 is
    # that autocast switched off
    own = teacher.autocast
    fp32 = lambda x: torch.autocast(x.device.type, enabled=False)  # noqa: E731
    for name, autocast in (("fp32", fp32), ("bf16 autocast (the teacher's own)", own)):
        teacher.autocast = autocast

        def run():
            with torch.no_grad():
                teacher_targets(teacher, images, 4)
        s = timed(run, device, 2 if quick else 10)
        table.add_row(name, f"{1000 * s:.1f}", f"{batch / s:,.0f}")
    teacher.autocast = own
    console.print(table)


def shared_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading entries two orders of one length share."""
    return int(np.argmin(np.r_[a == b, False]))


def kmeans(device: torch.device, quick: bool) -> None:
    import faiss

    from subsets.distributed_kmeans import kmeans_blocks

    n, k = (20_000, 100) if quick else (1_000_000, 1000)
    x = np.random.default_rng(0).standard_normal((n, 384)).astype(np.float32)
    table = Table(title=f"k-means, N = {n:,}, d = 384, {k:,} clusters")
    for col in ("k-means", "seconds", "assignments equal to the CPU's"):
        table.add_column(col, justify="right")
    if getattr(faiss, "get_num_gpus", lambda: 0)():
        for name, gpu in (("faiss.Kmeans on the CPU (256 rows a cluster)", False), ("faiss.Kmeans on the GPU", True)):
            km = faiss.Kmeans(384, k, niter=20, seed=0, gpu=gpu, verbose=False)
            start = time.perf_counter()
            km.train(x)
            table.add_row(name, f"{time.perf_counter() - start:.1f}", "")
    else:  # faiss.Kmeans on the CPU is only faiss-gpu's baseline: its 25 s are spared when there is nothing to compare
        table.add_row("faiss.Kmeans on the GPU", "faiss-gpu not installed (not in our extras)", "")
    # the selection job's Lloyd's k-means over every row (`--device`): faiss on the CPU against torch on the device,
    # 10 iterations (the job's are 20; time is linear in them, and the CPU's reference is the check's longest wait)
    start = time.perf_counter()
    _, cpu_labels, _ = kmeans_blocks([x], [0], n, k, seed=0, niter=10)
    table.add_row("the job's Lloyd's, faiss on the CPU, 10 iterations", f"{time.perf_counter() - start:.1f}", "")
    start = time.perf_counter()
    _, labels, _ = kmeans_blocks([x], [0], n, k, seed=0, niter=10, device=device)
    table.add_row(f"the job's Lloyd's, torch on {device.type} (--device), 10 iterations",
                  f"{time.perf_counter() - start:.1f}", f"{(labels == cpu_labels).mean():.4%}")
    console.print(table)


def kcenter(device: torch.device, quick: bool) -> None:
    from subsets.distributed_kcenter import kcenter_blocks

    n, k = (20_000, 100) if quick else (1_000_000, 1000)
    x = np.random.default_rng(0).standard_normal((n, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    blocks = np.array_split(x, 8)  # as eight embedding shards
    starts = np.cumsum([0] + [len(b) for b in blocks[:-1]]).tolist()
    start = time.perf_counter()
    cpu = kcenter_blocks(blocks, starts, n, 384, k, seed=0)
    cpu_s = time.perf_counter() - start
    start = time.perf_counter()
    dev = kcenter_blocks(blocks, starts, n, 384, k, seed=0, device=device)
    dev_s = time.perf_counter() - start
    agree = shared_prefix(cpu, dev)
    table = Table(title=f"the selection job's exact greedy k-center, N = {n:,}, d = 384, k = {k:,} (one process)")
    for col in ("products", "seconds", "orders agree for the first"):
        table.add_column(col, justify="right")
    table.add_row("numpy on the CPU (--device cpu)", f"{cpu_s:.1f}", "")
    table.add_row(f"torch on {device.type} (--device cuda)", f"{dev_s:.1f}", f"{agree:,} picks")
    table.caption = "orders may part where two distances tie within float32 rounding"
    console.print(table)


def selection_job(device: torch.device, quick: bool) -> None:
    import importlib.util
    import tempfile

    from subsets.make_subset import SelectConfig, runs_mapped

    spec = importlib.util.spec_from_file_location("bench_select", Path(__file__).parent / "select.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    n = 20_000 if quick else 1_000_000
    ks = {"kcenter": 500, "kmeans": 500} if quick else {"kcenter": 10_000, "kmeans": 1000}  # kmeans: k/2 clusters
    table = Table(title=f"`distill subset select` in one process, N = {n:,}, d = 384 (fp16 on disk)")
    for col in ("method", "k", "--device", "path", "job s", "selection s", "peak RSS MiB",
                "orders agree for the first", "mean distance vs the CPU's"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as work:
        emb = bench.write_embeddings_dir(Path(work) / f"emb-{n}", n, 384)
        for method, k in ks.items():
            runs = {d: bench.job_select(emb, k, 1, method, None, d) for d in ("cpu", device.type)}
            # the job's own rule for its path: the k-means methods run faiss in memory on the CPU in one process, and
            # Lloyd's over the mapped shards on a GPU; only two runs of one path give comparable orders
            mapped = {d: runs_mapped(SelectConfig(method=method, k_max=k, device=d)) for d in runs}
            for d, r in runs.items():
                agree = shared_prefix(r["order"], runs["cpu"]["order"])
                same_path = mapped[d] == mapped["cpu"]
                table.add_row(method, f"{k:,}", d, "over the mapped shards" if mapped[d] else "faiss in memory",
                              f"{r['wall']:.1f}", f"{r['select']:.1f}", f"{r['peak_mib']:,.0f}", "" if d == "cpu" else
                              f"{agree:,} picks" if same_path else "(another path)",
                              "" if d == "cpu" or not same_path else coverage_difference(r, runs["cpu"], agree))
    table.caption = ("the CLI's own path: shard checks, ordering, coverage report (its nearest-pick search on "
                     "--device, its corpus clusters on the CPU) and manifest; mean distance: the report's largest "
                     "relative difference from the CPU job's at the k where the orders are still one")
    console.print(table)


def coverage_difference(run: dict, cpu: dict, agree: int) -> str:
    """The largest relative difference of the coverage report's mean distance from the CPU job's, over the report's
    k where the two orders are still one (beyond, the subsets differ and so may their coverage)."""
    diffs = [abs(a["mean_dist"] - b["mean_dist"]) / b["mean_dist"]
             for a, b in zip(run["coverage"], cpu["coverage"]) if a["k"] <= agree]
    return f"{max(diffs):.1e} over {len(diffs)} k" if diffs else "no k within"


SECTIONS = {"attention": attention, "training": training_step, "caching": teacher_caching, "kmeans": kmeans,
            "kcenter": kcenter, "job": selection_job}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="small sizes: checks the script on a CPU (minutes: bf16 is slow there)")
    p.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    a = p.parse_args()
    device = torch.device(a.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    console.rule(f"GPU check on {name}, torch {torch.__version__}{' (quick sizes)' if a.quick else ''}")
    console.print(versions())
    started = time.perf_counter()
    if device.type == "cuda":  # a second of matrix products first: the first section's timings met a cold GPU
        a_few = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
        while time.perf_counter() - started < 1.0:
            a_few @ a_few
            torch.cuda.synchronize()  # or the host queues minutes of products in its second
    for section in a.only:
        section_start = time.perf_counter()
        try:
            SECTIONS[section](device, a.quick)
        except Exception as e:  # one section's failure (a missing kernel, out of memory) must not hide the others
            console.print(f"[red]{section}: {type(e).__name__}: {e}[/]")
        console.print(f"{section}: {time.perf_counter() - section_start:.0f} s")
    console.print(f"the whole check: {time.perf_counter() - started:.0f} s")


def versions() -> str:
    """The versions the figures depend on, the optional GPU packages included (or why they are absent)."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("timm", "xformers", "faiss-cpu", "faiss-gpu-cu12", "numpy"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} not installed")
    if torch.cuda.is_available() and "not installed" not in found[1]:
        from students.attention import xformers_available

        found[1] += " (its kernels run here)" if xformers_available() else " (no kernels for this torch and GPU)"
    cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA build"
    return f"{cuda}; " + ", ".join(found)


if __name__ == "__main__":
    main()
