"""Entry point: `python -m predictor --model_dir /mnt/models [--device auto] [...]`."""

from __future__ import annotations

from kserve_kit.cli import load_and_serve
from predictor.config import PredictorSettings


def main(argv: list[str] | None = None) -> None:
    args, config = PredictorSettings.parse(argv)
    from predictor.model import TextClassifierPredictor

    load_and_serve(args, "predictor", lambda: TextClassifierPredictor(config))


if __name__ == "__main__":
    main()
