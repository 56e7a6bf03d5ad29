"""Crash-only recovery for live runs: the write-ahead log, atomic snapshots and the replay fold.

* :mod:`workbench.recovery.wal`: the append-only, fsync'd, checksummed log (``wal.log``).
* :mod:`workbench.recovery.snapshot`: atomic ``snapshot.json`` (and ``snapshot.prev.json``).
* :mod:`workbench.recovery.replay`: ``rebuild(journal_dir) -> State``, the fold, ``compare``.
* :mod:`workbench.recovery.records`: record payloads to and from the journal's records; the books
  of a State.
* :mod:`workbench.recovery.journal`: ``WalJournal``, the Journal port over the log.

A run's journal directory is ``warehouse/live/<run_id>/``. See adr/0012-write-ahead-log-format.md
and "The journal" in docs/architecture.md.
"""

from workbench.recovery.journal import WalJournal
from workbench.recovery.replay import (
    Difference,
    ReplayError,
    State,
    apply_record,
    compare,
    fold,
    rebuild,
    recover,
)
from workbench.recovery.snapshot import load_snapshot, save_snapshot, take_snapshot
from workbench.recovery.wal import KINDS, Record, Wal, WalCorruption, WalError, read

__all__ = [
    "KINDS", "Difference", "Record", "ReplayError", "State", "Wal", "WalCorruption", "WalError",
    "WalJournal",
    "apply_record", "compare", "fold", "load_snapshot", "read", "rebuild", "recover",
    "save_snapshot", "take_snapshot",
]
