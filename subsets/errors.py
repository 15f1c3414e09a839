class InputError(Exception):
    """Bad input from the user (a file, a flag, a mismatch between stages).

    The command line prints its message as one line and exits with code 2, so the message must
    name the file or flag at fault and say what is wrong with it.
    """


class DiskFull(InputError):
    """The disk filled up mid-job. Complete outputs stay, so a rerun resumes where it stopped."""
