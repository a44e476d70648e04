"""Feature state across builds: the layout of this build's records, and the records of an
earlier layout carried into it.

A build that adds, drops or widens a field of :data:`~detector.features.state.SIM_STATE` or
:data:`~detector.features.state.IMEI_STATE` must not make a carrier choose between its last
day of state and the upgrade: a restart that threw the state away would leave the detector
blind to every rig already at work until its windows filled again. So the checkpoint stores
each layout's field list beside its hash (:func:`describe`), and a build that finds another
layout carries the records into its own (:func:`carry`), field by field and by name:

- a field of the same type and shape keeps its values;
- a field whose integer or float type widened (``<u2`` to ``<u4``, say) keeps them, cast;
- a structured field (the hourly slots) is carried field by field when its shape is the same;
- a field new in this build, or changed beyond that, starts as in a new record (empty), and
  a field this build no longer has is dropped. :class:`Carried` names each, for the log.

A field reset to empty is what a SIM first seen now would have: the rules that read it wait
for it to fill, as they do for a new SIM; the other fields, windows included, go on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from detector.features import state as st


def _as_json(descr: Any) -> Any:
    """A numpy ``descr`` as JSON can hold it (lists for tuples)."""
    if isinstance(descr, (list, tuple)):
        return [_as_json(d) for d in descr]
    return descr


def _as_descr(value: Any) -> Any:
    """A field list stored by :func:`describe` as a numpy ``descr`` again."""
    if isinstance(value, list) and value and isinstance(value[0], str):
        # one field: [name, type] or [name, type, shape]
        name, kind, *shape = value
        typ = _as_descr(kind) if isinstance(kind, list) else kind
        return (name, typ, tuple(shape[0])) if shape else (name, typ)
    if isinstance(value, list):
        return [_as_descr(v) for v in value]
    return value


def describe() -> dict[str, Any]:
    """This build's record layouts, as stored beside the checkpoint's records."""
    return {"sim": _as_json(st.SIM_STATE.descr), "imei": _as_json(st.IMEI_STATE.descr)}


def dtype_of(described: Any) -> np.dtype:
    """The record type of one layout of :func:`describe`; ``ValueError`` when it is none."""
    try:
        return np.dtype(_as_descr(described))
    except (TypeError, ValueError) as e:
        raise ValueError(f"not a record layout: {e}") from None


@dataclass(frozen=True, slots=True)
class Carried:
    """What carrying records into this build's layout did, by field (``slot.top_cell`` for a
    field of the hourly slots)."""
    kept: tuple[str, ...]
    reset: tuple[str, ...]        # new in this build, or changed beyond a widening
    dropped: tuple[str, ...]      # no longer in this build

    @property
    def lossless(self) -> bool:
        return not self.reset and not self.dropped


def _widens(old: np.dtype, new: np.dtype) -> bool:
    return (old.shape == new.shape and old.base.kind in "iuf" and new.base.kind in "iuf"
            and np.can_cast(old.base, new.base, "safe"))


def _copy(dst: np.ndarray, src: np.ndarray, prefix: str, kept: list, reset: list,
          dropped: list) -> None:
    new_fields, old_fields = dst.dtype.fields, src.dtype.fields
    for name in dst.dtype.names:
        path = prefix + name
        if name not in old_fields:
            reset.append(path)
            continue
        new, old = new_fields[name][0], old_fields[name][0]
        if new == old or _widens(old, new):
            dst[name] = src[name]
            kept.append(path)
        elif new.base.names and old.base.names and new.shape == old.shape:
            _copy(dst[name], src[name], path + ".", kept, reset, dropped)
        else:
            reset.append(path)
    dropped.extend(prefix + name for name in src.dtype.names if name not in new_fields)


def carry(blobs: list[bytes], old: np.dtype, new: np.dtype,
          empty: Callable[[int], np.ndarray]) -> tuple[list[bytes], Carried]:
    """``blobs`` (records of layout ``old``) as records of layout ``new``, each field carried
    as the module says; ``empty(n)`` makes ``n`` new records. ``ValueError`` names a record
    whose length is not ``old``'s."""
    for i, b in enumerate(blobs):
        if len(b) != old.itemsize:
            raise ValueError(f"record {i} has {len(b)} bytes; its stored layout has {old.itemsize}")
    kept: list[str] = []
    reset: list[str] = []
    dropped: list[str] = []
    src = np.frombuffer(b"".join(blobs), old)
    dst = empty(len(blobs))
    _copy(dst, src, "", kept, reset, dropped)
    raw, size = dst.tobytes(), new.itemsize
    return ([raw[i * size:(i + 1) * size] for i in range(len(blobs))],
            Carried(tuple(kept), tuple(reset), tuple(dropped)))
