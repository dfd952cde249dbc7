"""The one exception type seqrep raises for bad input, and `warn`, how seqrep warns."""

from __future__ import annotations

import sys
import warnings


class SeqrepError(ValueError):
    """Bad input to seqrep. The message says what is wrong, where, and how to fix it."""


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
