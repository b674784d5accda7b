"""The hop's contract: what the transformer sends the predictor and what it reads back.

The kit's predictor takes `input_ids` and `attention_mask` (INT64) and answers `logits`, under
the transformer's own model name. A V2 backend the kit did not write (Triton serving an ONNX
export, another team's server) may name them otherwise, want INT32, require `token_type_ids`, or
serve the model under another name: the transformer's flags say which, and `check` holds them
against the predictor's V2 model metadata at start, so a mismatch stops the process with one
line instead of failing every request.
"""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass

import numpy as np

from kserve_kit import contract
from kserve_kit.errors import SettingRefused
from transformer.balancing import _host_port, _url, split_target

logger = logging.getLogger("transformer.hop_contract")

INPUT_DATATYPES = ("INT64", "INT32")


@dataclass(frozen=True)
class HopContract:
    model_name: str  # the predictor's model name (--predictor_model_name)
    input_ids_name: str = contract.INPUT_IDS.name
    attention_mask_name: str = contract.ATTENTION_MASK.name
    token_type_ids_name: str | None = None  # None: not sent
    input_datatype: str = "INT64"
    output_name: str = contract.LOGITS.name

    def inputs(self, ids: np.ndarray, mask: np.ndarray) -> list[tuple[str, str, np.ndarray]]:
        """(name, V2 datatype, array) of each tensor to send, in the predictor's spelling."""
        dtype = contract.NUMPY_DTYPES[self.input_datatype]
        tensors = [(self.input_ids_name, ids), (self.attention_mask_name, mask)]
        if self.token_type_ids_name:
            # One text per row: BERT's segment ids are all 0 (segment B only exists for pairs).
            tensors.append((self.token_type_ids_name, np.zeros_like(ids)))
        return [(n, self.input_datatype, a.astype(dtype, copy=False)) for n, a in tensors]

    def flags(self) -> dict[str, str]:
        """{tensor name sent or read: the flag that names it}."""
        named = {
            self.input_ids_name: "--predictor_input_ids_name",
            self.attention_mask_name: "--predictor_attention_mask_name",
        }
        if self.token_type_ids_name:
            named[self.token_type_ids_name] = "--predictor_token_type_ids_name"
        return named

    def check(self, metadata: dict, labels: int, where: str) -> list[str]:
        """Raise SettingRefused (one line) where the predictor's V2 model metadata (the REST
        JSON shape: name, inputs, outputs) contradicts this contract; return warnings for what
        it does not contradict but may still refuse."""
        inputs = {t["name"]: t for t in metadata.get("inputs") or []}
        outputs = {t["name"]: t for t in metadata.get("outputs") or []}
        for name, flag in self.flags().items():
            if name not in inputs:
                raise SettingRefused(
                    f"{flag} {name!r}: the predictor {where} takes inputs {sorted(inputs)} "
                    "(its V2 metadata), not that one"
                )
            served = inputs[name].get("datatype")
            if served != self.input_datatype:
                raise SettingRefused(
                    f"--predictor_input_datatype {self.input_datatype}: the predictor {where} "
                    f"wants {name!r} as {served} (its V2 metadata)"
                )
        if self.output_name not in outputs:
            raise SettingRefused(
                f"--predictor_output_name {self.output_name!r}: the predictor {where} answers "
                f"outputs {sorted(outputs)} (its V2 metadata), not that one"
            )
        output = outputs[self.output_name]
        if output.get("datatype") != contract.LOGITS.datatype:
            raise SettingRefused(
                f"--predictor_output_name {self.output_name!r}: the predictor {where} answers "
                f"it as {output.get('datatype')}; the transformer reads FP32 scores"
            )
        shape = list(output.get("shape") or [])
        if shape and shape[-1] > 0 and shape[-1] != labels:
            raise SettingRefused(
                f"the predictor {where} answers {self.output_name!r} of shape {shape}: "
                f"{shape[-1]} classes, while the model directory has {labels} labels"
            )
        unsent = sorted(set(inputs) - set(self.flags()))
        return [
            f"the predictor {where} also lists input {name!r}, which this transformer does not "
            "send: a predictor that requires it will refuse every request "
            "(--predictor_token_type_ids true sends token_type_ids)"
            for name in unsent
        ]


def fetch_metadata(host: str, protocol: str, model_name: str, timeout_s: float) -> dict | None:
    """The predictor's V2 model metadata, in the REST JSON shape; None when no predictor
    answers within `timeout_s` (it may still be starting: the check is then skipped). A
    predictor that answers but does not serve `model_name` raises SettingRefused."""
    if protocol == "grpc-v2":
        return _grpc_metadata(host, model_name, timeout_s)
    return _rest_metadata(host, model_name, timeout_s)


def _not_served(host: str, model_name: str, reason: str) -> SettingRefused:
    return SettingRefused(
        f"--predictor_model_name {model_name!r}: the predictor at {host} does not serve it "
        f"({reason})"
    )


def _grpc_metadata(host: str, model_name: str, timeout_s: float) -> dict | None:
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    with grpc.insecure_channel(host) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        try:
            answer = stub.ModelMetadata(
                pb.ModelMetadataRequest(name=model_name), timeout=timeout_s, wait_for_ready=True
            )
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise _not_served(host, model_name, exc.details() or exc.code().name) from None
            return None

    def tensors(items):
        return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in items]

    return {
        "name": answer.name,
        "inputs": tensors(answer.inputs),
        "outputs": tensors(answer.outputs),
    }


def _rest_metadata(host: str, model_name: str, timeout_s: float) -> dict | None:
    scheme, addresses = split_target(host)
    if scheme == "dns":
        name, port = _host_port(addresses[0])
        try:
            url = _url(socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)[0][4][0], port)
        except OSError:
            return None
    elif scheme in ("ipv4", "ipv6"):
        url = _url(*_host_port(addresses[0]))
    else:
        url = f"http://{addresses[0]}"
    try:
        with urllib.request.urlopen(f"{url}/v2/models/{model_name}", timeout=timeout_s) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        if exc.code in (400, 404):
            raise _not_served(host, model_name, f"HTTP {exc.code}") from None
        return None
    except (OSError, ValueError):
        return None


def check_predictor(
    hop: HopContract, host: str, protocol: str, labels: int, timeout_s: float
) -> bool:
    """Check `hop` against the predictor's metadata; False when no predictor answered."""
    if timeout_s <= 0:
        return False
    metadata = fetch_metadata(host, protocol, hop.model_name, timeout_s)
    where = f"{hop.model_name!r} at {host}"
    if metadata is None:
        logger.warning(
            "the hop's contract is not checked: no predictor answered at %s within %gs "
            "(--predictor_metadata_timeout_seconds)",
            host,
            timeout_s,
        )
        return False
    # INFO, not WARNING: the kit's own predictor lists token_type_ids and takes it optionally,
    # and V2 metadata cannot say which inputs are optional.
    for note in hop.check(metadata, labels, where):
        logger.info("%s", note)
    logger.info("the hop's contract matches the predictor %s's V2 metadata", where)
    return True
