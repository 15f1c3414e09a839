class StudentError(ValueError):
    """A student that cannot be built or run as asked. The message names the setting at fault; the command line
    prints it as one line (the students package knows nothing of the data or training packages)."""
