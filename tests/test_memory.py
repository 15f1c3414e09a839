"""The memory left to a process under a cgroup limit (containers, SLURM jobs), which psutil alone does not see."""

from pathlib import Path

from subsets.memory import available_memory, cgroup_memory_left

GiB = 2**30


def _write(folder: Path, **files: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_", ".", 1)).write_text(text)


def test_a_cgroup_v2_limit_counts_its_usage_less_the_reclaimable_file_cache(tmp_path):
    _write(tmp_path, memory_max="max\n", memory_current=str(40 * GiB))  # the unlimited root
    _write(tmp_path / "job", memory_max=str(8 * GiB), memory_current=str(6 * GiB),
           memory_stat=f"anon {4 * GiB}\ninactive_file {1 * GiB}\nactive_file 0\n")
    (tmp_path / "cgroup").write_text("0::/job\n")
    assert cgroup_memory_left(tmp_path, tmp_path / "cgroup") == 3 * GiB  # 8 - (6 - 1)
    assert available_memory(tmp_path, tmp_path / "cgroup") <= 3 * GiB


def test_under_cgroup_v1_the_tightest_ancestor_limits(tmp_path):
    mem = tmp_path / "memory"
    _write(mem, memory_limit_in_bytes="9223372036854771712", memory_usage_in_bytes=str(50 * GiB))
    _write(mem / "slurm", memory_limit_in_bytes=str(4 * GiB), memory_usage_in_bytes=str(3 * GiB))
    _write(mem / "slurm" / "job_7", memory_limit_in_bytes=str(16 * GiB), memory_usage_in_bytes=str(2 * GiB),
           memory_stat="total_inactive_file 0\n")
    (tmp_path / "cgroup").write_text("4:cpu,cpuacct:/slurm/job_7\n3:memory:/slurm/job_7\n")
    assert cgroup_memory_left(tmp_path, tmp_path / "cgroup") == 1 * GiB  # the job's parent: 4 - 3


def test_no_limit_or_no_readable_hierarchy_leaves_the_machines_memory(tmp_path):
    import psutil

    _write(tmp_path / "memory", memory_limit_in_bytes="9223372036854771712", memory_usage_in_bytes="100")
    (tmp_path / "cgroup").write_text("3:memory:/not/mounted/here\n")  # a container sees its own cgroup as the root
    assert cgroup_memory_left(tmp_path, tmp_path / "cgroup") is None
    assert cgroup_memory_left(tmp_path, tmp_path / "missing") is None
    assert available_memory(tmp_path, tmp_path / "missing") > 0.5 * psutil.virtual_memory().available
