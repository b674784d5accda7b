"""Entry point: `python -m transformer --predictor_host HOST:PORT [--predictor_protocol grpc-v2]`."""

from __future__ import annotations

import logging
import sys

from kserve_kit.cli import start_server
from kserve_kit.errors import ModelUnfit
from transformer.config import TransformerConfig


def main(argv: list[str] | None = None) -> None:
    args, config = TransformerConfig.parse(argv)
    from transformer.model import TextClassifierTransformer

    try:
        model = TextClassifierTransformer(config, max_message_bytes=args.grpc_max_send_message_length)
        model.load()
    except ModelUnfit as exc:
        logging.getLogger("transformer").error("cannot serve %s: %s", config.model_dir, exc)
        sys.exit(f"transformer: {exc}")
    start_server(args, model)


if __name__ == "__main__":
    main()
