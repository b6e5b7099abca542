"""A bounded cache of allowed verdicts in front of a Verifier: an app reuses its token for
minutes, so check it once.

An entry is keyed on the exact token bytes, the binding value and the policy, so it can only
answer the very same credentials. Its `exp` is checked again on every hit, and the whole cache
is dropped whenever the key set changes. Only allowed verdicts are kept: a deny is recomputed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Generic, TypeVar

from authsvc.check.credentials import Credentials
from authsvc.check.keys import KeySet
from authsvc.check.rules import Step
from authsvc.check.verify import Verdict, Verifier
from authsvc.policy import BindingMode, Decision

CacheKey = tuple[bytes, bytes | None, BindingMode]
T = TypeVar("T")


class CachingVerifier:
    """`verifier` with a cache of its allowed verdicts in front (the Checker the app uses)."""

    def __init__(self, verifier: Verifier, size: int) -> None:
        self._verifier = verifier
        self._cache = VerdictCache(size)
        self.hits = 0
        """Lookups answered from the cache, and (misses) those that were not: counted here,
        where the cache is looked in (credentials it cannot hold are never looked up)."""
        self.misses = 0

    @property
    def ready(self) -> bool:
        return self._verifier.ready

    def trace(
        self, credentials: Credentials, binding_mode: BindingMode
    ) -> tuple[Verdict, tuple[Step, ...]]:
        """The verifier's own steps: an explanation is never answered from the cache."""
        return self._verifier.trace(credentials, binding_mode)

    def check(self, credentials: Credentials, binding_mode: BindingMode) -> Verdict:
        verifier = self._verifier
        if len(credentials.tokens) != 1 or credentials.binding_conflict or credentials.unprefixed:
            return verifier.check(credentials, binding_mode)
        cache_key = (credentials.tokens[0], credentials.binding_value, binding_mode)
        keys = verifier.keys.current
        hit = self._cache.get(cache_key, keys, verifier.clock() - verifier.leeway_seconds)
        if hit is not None:
            self.hits += 1
            return hit
        self.misses += 1
        verdict = verifier.check(credentials, binding_mode)
        # Only if no key change landed meanwhile: the verdict was reached with `keys`.
        if verdict.decision is Decision.ALLOW and keys is verifier.keys.current:
            # Kept marked: each hit hands out this very object, which VerdictMemo relies on.
            self._cache.put(cache_key, replace(verdict, cached=True))
        return verdict


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


class VerdictMemo(Generic[T]):
    """What a layer derives from a verdict (response headers, a log fragment), derived once per
    verdict that recurs rather than once per check: a cached verdict (the cache hands out the
    same object on every hit) and one without claims (a refusal before the signature verified,
    all in its reason and decision: the deny a flood of forged tokens repeats). A miss's allow
    is a new verdict each check and is derived every time.

    A cached verdict is keyed on its identity and held, so an id is never reused while its entry
    lives; one without claims is keyed on its value (all its fields). The memo is emptied when
    it reaches `size`.
    """

    __slots__ = ("_derive", "_entries", "_size")

    def __init__(self, derive: Callable[[Verdict], T], size: int = 1024) -> None:
        self._derive = derive
        self._size = size
        self._entries: dict[int | Verdict, tuple[Verdict, T]] = {}

    def __call__(self, verdict: Verdict) -> T:
        if verdict.cached:
            key: int | Verdict = id(verdict)
        elif verdict.claims is None:  # hashable then: every other field is
            key = verdict
        else:
            return self._derive(verdict)
        entry = self._entries.get(key)
        # An id must find its own object; an equal value derives the same.
        if entry is not None and (key is verdict or entry[0] is verdict):
            return entry[1]
        derived = self._derive(verdict)
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[key] = (verdict, derived)
        return derived
