"""The Auth Gateway's durable spool: ``store`` (the :class:`Spool`), ``codec`` (the on-disk
record format), ``segments`` (segment files and the delivery cursor), ``order`` (the
batches in spool order), ``recovery`` (repair at start-up)."""

from services.auth.spool.store import Spool, SpooledBatch, SpoolError, SpoolFull

__all__ = ["Spool", "SpoolError", "SpoolFull", "SpooledBatch"]
