"""A synthetic SalesIQ webhook archive, deterministic from a seed (``siq sample``).

:func:`write_sample` simulates four weeks of one portal (Zylker, from 2026-03-02 UTC): departments
and operators set up and changing, visitors (leads turning into contacts) chatting, operators
answering, bots greeting, chats missed, completed, rated; then the webhook deliveries of all that,
as an endpoint would have archived them, signed with a key pair made from the seed
(:func:`sample_key`). The files it writes are listed in ``_archive``.

Same arguments, same bytes: the clock is simulated, the RSA key comes from a prime search driven
by ``random.Random(seed)``, PKCS#1 v1.5 signatures are deterministic, gzip headers carry no time
and no name, and every list is written in a stable order.
"""

from ._archive import write_sample
from ._constants import MIN_EVENTS
from ._keys import sample_key

__all__ = ["MIN_EVENTS", "sample_key", "write_sample"]
