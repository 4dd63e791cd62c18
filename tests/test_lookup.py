"""Membership of strings in large sets (pipeline.lookup)."""
import numpy as np
import pandas as pd

from pipeline.lookup import is_in


def test_is_in_matches_pandas_isin_on_every_kind_of_input():
    values = pd.Series(["L1", None, "L3", "L2", "", "L1"], dtype="str")
    value_set = ["L1", "L2", "", "L9"]
    expected = values.isin(value_set).to_numpy() & values.notna().to_numpy()
    for given in (value_set, set(value_set), dict.fromkeys(value_set).keys(), pd.Index(value_set),
                  pd.Series(value_set, dtype=object), np.array(value_set)):
        assert is_in(values, given).tolist() == expected.tolist()
    assert is_in(values.astype(object), value_set).tolist() == expected.tolist()


def test_is_in_with_nothing_on_either_side():
    assert is_in(pd.Series([], dtype="str"), ["L1"]).tolist() == []
    assert is_in(["L1", None], []).tolist() == [False, False]
    assert is_in([None], [None]).tolist() == [False]  # a missing value is never found
