"""deeprec_lite._checks: the shared argument checks accept exactly the values in range and
name the argument and the value otherwise."""
import numpy as np
import pytest

from deeprec_lite._checks import check_int, check_number, check_positive_int, is_int


def test_is_int_takes_python_and_numpy_integers_but_not_bools_or_floats():
    assert [is_int(v) for v in (3, np.int32(3), np.int64(-1), True, np.bool_(True), 3.0, "3")] \
        == [True, True, True, False, False, False, False]


@pytest.mark.parametrize("kwargs, good, bad, message", [
    ({}, [-5, 0, 7], [1.0, None], "n must be an integer, got"),
    ({"minimum": 0}, [0, 9], [-1], "n must be a non-negative integer, got -1"),
    ({"minimum": 1}, [1, np.int64(2)], [0, True], "n must be a positive integer, got"),
    ({"minimum": 3}, [3], [2], "n must be an integer >= 3, got 2"),
    ({"minimum": 0, "below": 2}, [0, 1], [2, -1], r"n must be an integer in \[0, 2\), got"),
    ({"minimum": 0, "none_ok": True}, [None, 0], [-1], "n must be a non-negative integer or None"),
])
def test_check_int(kwargs, good, bad, message):
    for value in good:
        got = check_int(value, "n", **kwargs)
        assert got == value and (got is None or type(got) is int)
    for value in bad:
        with pytest.raises(ValueError, match=message):
            check_int(value, "n", **kwargs)


def test_owner_prefixes_the_message():
    with pytest.raises(ValueError, match=r"^CIN: layer_sizes must be a positive integer; "
                                         r"received layer_sizes=-2$"):
        check_positive_int(-2, "layer_sizes", owner="CIN")
    with pytest.raises(ValueError, match=r"^SENET: ratio must be > 0; received ratio=0.0$"):
        check_number(0, "ratio", low=0, low_open=True, owner="SENET")


@pytest.mark.parametrize("value, kwargs, message", [
    (True, {}, "x must be a number, got True"),
    ("1", {}, "x must be a number, got '1'"),
    (float("nan"), {}, "x must be finite, got nan"),
    (10 ** 400, {}, rf"x must be finite, got {10 ** 400}"),
    (0.0, {"low": 0, "low_open": True}, "x must be > 0, got 0.0"),
    (1.0, {"low": 0, "high": 1, "high_open": True}, "x must be >= 0 and < 1, got 1.0"),
])
def test_check_number_rejects(value, kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        check_number(value, "x", **kwargs)


def test_check_number_accepts_the_bounds_it_includes():
    assert check_number(np.float32(0.5), "x", low=0, high=0.5) == 0.5
    assert type(check_number(2, "x")) is float


def test_check_int_refuses_what_int64_cannot_hold():
    assert check_int(2 ** 63 - 1, "n", minimum=0) == 2 ** 63 - 1
    assert check_int(-2 ** 63, "n") == -2 ** 63
    with pytest.raises(ValueError, match=rf"^n must be at most 2\*\*63 - 1 \(int64\), got {2 ** 63}$"):
        check_int(2 ** 63, "n", minimum=0)
    with pytest.raises(ValueError, match=r"n must be at least -2\*\*63 \(int64\)"):
        check_int(-2 ** 63 - 1, "n")
