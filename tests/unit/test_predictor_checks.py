import numpy as np
import pytest

from kserve_kit.errors import BadInput, TooLarge
from kserve_kit.tensors import check_token_tensors

pytestmark = pytest.mark.unit


def tensors(ids, mask=None, types=None):
    ids = np.array(ids, dtype=np.int64)
    out = {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids) if mask is None else np.array(mask),
    }
    if types is not None:
        out["token_type_ids"] = np.array(types)
    return out


def check(t, **kw):
    limits = {"vocab_size": 100, "max_positions": 8, "type_vocab_size": 2, "max_rows": 4}
    return check_token_tensors(t, **{**limits, **kw})


def test_valid_tensors_come_back_as_int64():
    ids, mask, types = check(tensors([[1, 2, 3]], types=[[0, 0, 1]]))
    assert ids.dtype == mask.dtype == types.dtype == np.int64


@pytest.mark.parametrize(
    "t, error, message",
    [
        (
            tensors([[1, 2, 100]]),
            BadInput,
            "input_ids values must be in \\[0, 100\\).*from 1 to 100",
        ),
        (tensors([[1, -1, 3]]), BadInput, "from -1 to 3"),
        (
            tensors([[1, 2, 3]], mask=[[1, 1]]),
            BadInput,
            "attention_mask must have the shape of input_ids \\[1, 3\\], got \\[1, 2\\]",
        ),
        (tensors([[1, 2, 3]], mask=[[1, 2, 1]]), BadInput, "0 or 1"),
        (tensors([[1, 2, 3]], types=[[0, 5, 0]]), BadInput, "token_type_ids values"),
        (tensors([[1] * 9]), BadInput, "at most 8 tokens long, got 9"),
        (tensors([[1]] * 5), TooLarge, "at most 4 rows \\(--max_batch_size\\), got 5"),
        (tensors(np.zeros((0, 3), dtype=np.int64)), BadInput, "one row and one token at least"),
    ],
)
def test_bad_tensors_are_refused_with_a_reason(t, error, message):
    with pytest.raises(error, match=message):
        check(t)
