"""core.batches: the one place long id lists are cut for IN lists and bulk inserts."""
import pytest

from evalhub.core.batches import IN_LIST, batches


def test_cuts_in_order_and_keeps_every_value():
    values = list(range(1001))
    parts = list(batches(values))
    assert [len(p) for p in parts] == [IN_LIST, IN_LIST, 1]
    assert [v for p in parts for v in p] == values


def test_takes_any_iterable_and_a_size():
    assert list(batches((i for i in range(5)), 2)) == [[0, 1], [2, 3], [4]]
    assert list(batches({7}, 2)) == [[7]]


def test_nothing_for_no_values_and_refuses_a_size_below_one():
    assert list(batches([])) == []
    with pytest.raises(ValueError):
        list(batches([1], 0))
