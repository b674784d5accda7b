import pytest

from kserve_kit.errors import BadInput, TooLarge
from kserve_kit.tensors import check_texts
from transformer.model import request_threshold

pytestmark = pytest.mark.unit


def test_override_is_used_when_allowed():
    assert request_threshold({"confidence_threshold": 0.4}, 0.9, allow_override=True) == 0.4
    assert request_threshold({"confidence_threshold": "0.4"}, 0.9, allow_override=True) == 0.4
    assert request_threshold(None, 0.9, allow_override=True) == 0.9
    assert request_threshold({"other": 1}, 0.9, allow_override=True) == 0.9


def test_override_is_refused_when_the_operator_fixed_the_threshold():
    with pytest.raises(BadInput, match="threshold is fixed"):
        request_threshold({"confidence_threshold": 0.4}, 0.9, allow_override=False)


@pytest.mark.parametrize("value", [0, 1, 7, -0.5, "x", True])
def test_override_outside_zero_one_or_not_a_number_is_a_bad_input(value):
    with pytest.raises(BadInput, match="confidence_threshold"):
        request_threshold({"confidence_threshold": value}, 0.9, allow_override=True)


def test_batch_checks():
    check_texts(["a"] * 4, max_batch_size=4)
    with pytest.raises(BadInput, match="no texts"):
        check_texts([], 4)
    with pytest.raises(TooLarge, match="at most 4 texts \\(--max_batch_size\\), got 5"):
        check_texts(["a"] * 5, 4)
    with pytest.raises(BadInput, match="text 1 is empty"):
        check_texts(["a", "  \n"], 4)
