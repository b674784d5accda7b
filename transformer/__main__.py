"""Entry point: `python -m transformer --predictor_host HOST:PORT [--predictor_protocol ...]`."""

from __future__ import annotations

from kserve_kit.cli import load_and_serve
from transformer.config import TransformerSettings


def main(argv: list[str] | None = None) -> None:
    args, config = TransformerSettings.parse(argv)
    from transformer.model import TextClassifierTransformer

    load_and_serve(
        args,
        "transformer",
        lambda: TextClassifierTransformer(config, args.grpc_max_send_message_length),
    )


if __name__ == "__main__":
    main()
