import pytest

from tests.support.cmdline import flag

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model_name=a"], "a"),
        (["--model_name", "a"], "a"),
        (["--model_name", "a", "--model_name=b"], "b"),  # argparse keeps the last
        (["--model_name_x=a", "--model"], None),  # neither is --model_name
        (["--model_name"], None),  # no value follows
    ],
)
def test_flag_reads_args_as_argparse_does(args, expected):
    assert flag(args, "--model_name") == expected
