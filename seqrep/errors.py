"""The one exception type seqrep raises for bad input."""


class SeqrepError(ValueError):
    """Bad input to seqrep. The message says what is wrong, where, and how to fix it."""
