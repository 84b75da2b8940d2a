"""The results store of a sweep: one SQLite database (WAL) and weight files beside it.

``db`` holds the schema and every write (one writer: the coordinating process), ``files``
recognises a store before touching it, names it (:func:`default_path`) and writes weights
atomically, ``load`` reads a store back as pandas DataFrames.
"""

from toylab.store.db import RunOutcome, Store, StoredRun
from toylab.store.files import default_path
from toylab.store.load import SweepData, load

__all__ = ["Store", "StoredRun", "RunOutcome", "SweepData", "load", "default_path"]
