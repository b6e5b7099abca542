"""A bounded cache of allowed verdicts: an app reuses its token for minutes, so check it once.

An entry is keyed on the exact token bytes, the binding value and the policy, so it can only
answer the very same credentials. Its `exp` is checked again on every hit, and the whole cache
is dropped whenever the key set changes. Only allowed verdicts are kept: a deny is recomputed.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from authsvc.config import BindingMode
    from authsvc.keys import KeySet
    from authsvc.verify import Verdict

CacheKey = tuple[bytes, bytes | None, "BindingMode"]


class VerdictCache:
    __slots__ = ("_entries", "_keys", "_size")

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[CacheKey, Verdict] = OrderedDict()
        self._keys: KeySet | None = None

    def get(self, key: CacheKey, keys: KeySet, expired_at: float) -> Verdict | None:
        """The allowed verdict for `key`, unless its token expired by `expired_at`."""
        if keys is not self._keys:  # new keys: nothing verified with the old ones may stand
            self._entries.clear()
            self._keys = keys
            return None
        verdict = self._entries.get(key)
        if verdict is None:
            return None
        claims = verdict.claims
        if claims is None or claims["exp"] <= expired_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return verdict

    def put(self, key: CacheKey, verdict: Verdict) -> None:
        self._entries[key] = verdict
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
