"""The lock that keeps a second job out of an output folder."""

import json

import pytest

from subsets.errors import InputError
from subsets.lock import folder_lock, lock_path


def test_a_held_folder_is_refused_and_released_after_the_job_even_when_it_fails(tmp_path):
    out = tmp_path / "out"
    with folder_lock(out):
        assert lock_path(out).exists() and not out.exists()  # beside the folder: a failed job leaves no folder
        with pytest.raises(InputError, match=r"out: in use by another job \(pid \d+"):
            with folder_lock(out):
                pass
    assert not lock_path(out).exists()
    with pytest.raises(RuntimeError):
        with folder_lock(out):
            raise RuntimeError("the job failed")
    assert not lock_path(out).exists()


def test_a_dead_local_owner_is_stale_and_a_foreign_host_is_not_guessed(tmp_path, capsys):
    import socket

    out = tmp_path / "out"
    lock_path(out).write_text(json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname(), "since": "then",
                                          "command": "distill train"}))
    with folder_lock(out):
        pass
    assert "took over a stale lock" in capsys.readouterr().out
    lock_path(out).write_text(json.dumps({"pid": 1, "host": "another-node", "since": "then", "command": "distill x"}))
    with pytest.raises(InputError, match="another-node.*delete .*.out.lock if that job is gone"):
        with folder_lock(out):
            pass


def test_a_run_still_training_is_named_so_when_evaluated_not_sent_to_resume(tmp_path):
    import socket

    from distill.evaluate import check_complete

    run = tmp_path / "run"
    (run / "checkpoints" / "step-2000").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"complete": False}))
    with folder_lock(run):  # a trainer holds its run folder while it trains
        with pytest.raises(InputError, match=r"run: not a complete training run \(it is training now, pid \d+ on "
                                             r".* since .*: wait for it to end\)"):
            check_complete(run)
    with pytest.raises(InputError, match=r"it has checkpoints: finish it with --resume"):
        check_complete(run)
    lock_path(run).write_text(json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname(), "since": "then"}))
    with pytest.raises(InputError, match=r"it has checkpoints: finish it with --resume"):  # its trainer is gone
        check_complete(run)
