"""The public surface: a sorted ``__all__`` that matches the real namespace."""

from __future__ import annotations

import emrshare
import emrshare.errors


def test_all_is_sorted_and_exists() -> None:
    names = [n for n in emrshare.__all__ if n != "__version__"]
    assert names == sorted(names)
    for name in emrshare.__all__:
        assert hasattr(emrshare, name), name


def test_every_error_is_exported_and_rooted() -> None:
    for name in emrshare.errors.__all__:
        obj = getattr(emrshare.errors, name)
        assert issubclass(obj, emrshare.EmrShareError)
        assert name in emrshare.__all__, f"{name} missing from emrshare.__all__"


def test_no_public_name_is_left_out() -> None:
    public = {n for n in vars(emrshare) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(emrshare, n)).__name__ == "module"}
    assert public - modules <= set(emrshare.__all__)
