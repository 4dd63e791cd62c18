"""Membership of strings in large sets.

pandas 3 holds strings as Arrow arrays, and its ``Series.isin`` then turns every value of the
set into a Python scalar first: seconds for a million letter ids, each night. :func:`is_in`
hands both sides to Arrow's hash lookup instead.
"""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _strings(items):
    """``items`` (a Series, Index, array, list or any iterable of str) as one Arrow array."""
    if not isinstance(items, (pa.Array, pa.ChunkedArray, np.ndarray, list)) and not hasattr(items, "__arrow_array__") \
            and not hasattr(items, "dtype"):
        items = list(items)
    values = pa.array(items, from_pandas=True) if not isinstance(items, (pa.Array, pa.ChunkedArray)) else items
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return values.cast(pa.large_string())


def is_in(values, value_set):
    """Whether each of ``values`` is one of ``value_set`` (strings; a missing value never is):
    a bool array as long as ``values``."""
    found = pc.is_in(_strings(values), value_set=_strings(value_set), skip_nulls=True)
    return pc.fill_null(found, False).to_numpy(zero_copy_only=False)
