"""One name per setting: a settings object's field is its flag's name, mechanically
(`--x_seconds` -> `x_s`, `--x_per_second` -> `x_per_s`), so a newcomer finds one from the other.
Fields that are not flags are listed with the reason."""

import dataclasses
import re

import pytest

pytestmark = pytest.mark.unit

NOT_FLAGS = {
    "runtime": "the predictor's settings, nested (PredictorSettings)",
    "text": "the text flags, nested (TextSettings)",
}


def field_for(flag: str) -> str:
    name = flag.lstrip("-")
    name = re.sub(r"_per_second$", "_per_s", name)
    return re.sub(r"_seconds$", "_s", name)


def settings():
    from kserve_kit.settings import TextSettings, add_text_arguments
    from offline.batch import build_parser as batch_parser
    from offline.settings import BatchSettings
    from predictor.config import PredictorSettings
    from predictor.config import build_parser as predictor_parser
    from transformer.config import TransformerSettings
    from transformer.config import build_parser as transformer_parser

    def text_parser():
        import argparse

        parser = argparse.ArgumentParser()
        add_text_arguments(parser)
        return parser

    return [
        (PredictorSettings, predictor_parser),
        (TransformerSettings, transformer_parser),
        (BatchSettings, batch_parser),
        (TextSettings, text_parser),
    ]


@pytest.mark.parametrize("cls, make_parser", settings(), ids=lambda x: getattr(x, "__name__", ""))
def test_every_field_is_named_after_its_flag(cls, make_parser):
    fields = {f.name for f in dataclasses.fields(cls)} - set(NOT_FLAGS)
    flags = {
        field_for(option)
        for action in make_parser()._actions
        for option in action.option_strings
        if option.startswith("--")
    }
    assert fields <= flags, (
        f"{cls.__name__} fields with no flag of that name: {sorted(fields - flags)}"
    )


def test_the_kit_s_settings_do_not_take_kserve_s_names():
    import kserve

    from predictor.config import PredictorSettings

    assert PredictorSettings is not getattr(kserve, "PredictorConfig", None)
    assert not hasattr(kserve, "PredictorSettings")
