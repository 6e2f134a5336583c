"""Which records a member's grants name: a grant of a whole category tag names every
record of the tag, one scoped to records (``GrantCreated.records``) only those."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from emrshare.chain import EntryAppended, GrantCreated

__all__ = ["covers", "names_entry"]


def covers(grant: GrantCreated, record_id: bytes) -> bool:
    """Whether ``grant`` names ``record_id`` (a grant of its whole tag names them all; one
    scoped to records only those)."""
    return not grant.records or bytes(record_id) in {bytes(r) for r in grant.records}


def names_entry(grants: Iterable[GrantCreated]) -> Callable[[EntryAppended], bool]:
    """Whether an index entry is one that ``grants`` name: of a tag granted whole, or a
    record a scoped grant of its tag lists."""
    whole: set[bytes] = set()
    scoped: dict[bytes, set[bytes]] = {}
    for g in grants:
        if g.records:
            scoped.setdefault(bytes(g.tag), set()).update(bytes(r) for r in g.records)
        else:
            whole.add(bytes(g.tag))

    def named(ev: EntryAppended) -> bool:
        tag = bytes(ev.tag)
        return tag in whole or bytes(ev.record_id) in scoped.get(tag, ())

    return named
