"""The one exception type seqrep raises for bad input; `warn`, how seqrep warns; and the two
checks every function that takes a path shares: `as_path` (a path argument that is no path) and
`why_missing` (what stands where a file was expected: nothing, a broken or looping symbolic
link, a folder)."""

from __future__ import annotations

import errno
import os
import sys
import warnings
from pathlib import Path


class SeqrepError(ValueError):
    """Bad input to seqrep. The message says what is wrong, where, and how to fix it."""


def as_path(value, what: str, example: str) -> Path:
    """`value` as a Path, or SeqrepError naming `what` was expected (`example`: a valid value)
    when it is not a str or os.PathLike (None, a number, a dataset object)."""
    if isinstance(value, (str, os.PathLike)) and str(value):
        return Path(value)
    raise SeqrepError(f"{what} must be a path (a str or pathlib.Path), got {value!r}; e.g. {example}.")


def why_missing(path: Path) -> str:
    """Why `path` cannot be opened as a file, in words: 'no such file', 'a symbolic link loop
    (...)', 'a broken symbolic link to ...', 'a folder, not a file', or the OS's reason."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return ("a symbolic link loop (a link that leads back to itself); point the link at "
                    "the real file with ln -sfn")
        if path.is_symlink():
            return f"a broken symbolic link to {os.readlink(path)!r}, which does not exist"
        if err.errno == errno.ENOENT:
            return "no such file"
        return err.strerror or str(err)
    return "a folder, not a file" if path.is_dir() else "not a regular file"


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """`warnings.warn`, located at the seqrep module that warns, by its name and line
    ("seqrep.doctor.watch:250: TrainingWarning: ..."), not by a file path: a path (of this
    installation, or of torch's optimizer hook that runs `watch`) printed into a notebook's
    output would travel with every copy shared. Filters by category or module work as for
    any warning, and a location warns once by default, as with warnings.warn."""
    frame = sys._getframe(1)
    module = frame.f_globals.get("__name__", "seqrep")
    warnings.warn_explicit(message, category, module, frame.f_lineno, module=module,
                           registry=frame.f_globals.setdefault("__warningregistry__", {}))
