"""Entry point: `python -m predictor --model_dir /mnt/models [--device auto] [...]`."""

from __future__ import annotations

import logging
import sys

from kserve_kit.cli import start_server
from kserve_kit.errors import ModelUnfit
from predictor.config import PredictorConfig


def main(argv: list[str] | None = None) -> None:
    args, config = PredictorConfig.parse(argv)
    from predictor.model import TextClassifierPredictor

    try:
        model = TextClassifierPredictor(config)
        model.load()
    except ModelUnfit as exc:
        logging.getLogger("predictor").error("cannot serve %s: %s", config.model_dir, exc)
        sys.exit(f"predictor: {exc}")
    start_server(args, model)


if __name__ == "__main__":
    main()
