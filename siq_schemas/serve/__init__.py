"""``siq serve``: the webhook receiver, which archives every authentic delivery durably.

:func:`create_app` makes the ASGI app (:mod:`~siq_schemas.serve.receiver`);
:mod:`~siq_schemas.serve.archive` writes the archive it keeps (slots, files,
compression); :mod:`~siq_schemas.serve._uvicorn` runs it under uvicorn.
"""

from __future__ import annotations

from .receiver import MAX_BODY_BYTES, Receiver, create_app, largest_body

__all__ = ["MAX_BODY_BYTES", "Receiver", "create_app", "largest_body"]
