"""The model runtime: a Hugging Face sequence classifier in torch, on the CPU or a GPU.

The only module of the predictor that imports torch and transformers.

CPU settings made on purpose, before torch is imported:
- `OMP_WAIT_POLICY=PASSIVE` unless the environment says otherwise: an OpenMP thread that finished
  its share of an op sleeps instead of spinning for the next one. When the cores are shared
  (the transformer, the gRPC threads, a neighbour pod), spinning threads steal the time the other
  threads of the same op need, and a forward can take several times as long.
- intra-op threads = the CPUs this process may really use: its affinity (cpuset) bounded by its
  cgroup CPU quota, so a pod limited to 2 CPUs on a 64-core node runs 2 threads, not 64.
- one inter-op thread: an eager model runs one op at a time. Concurrency comes from the batcher's
  forward workers (`--forward_workers`): several forwards at once share the intra-op threads
  (`TorchRuntime.thread_plan`), a lone one gets them all.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import math
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

if "torch" not in sys.modules:  # OpenMP reads its environment once, when torch loads it
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification  # noqa: E402

from kserve_kit.contract import DEFAULT_CONFIDENCE_THRESHOLD, DEFAULT_OTHERS_LABEL  # noqa: E402
from kserve_kit.errors import ModelUnfit  # noqa: E402
from kserve_kit.modeldir import ModelInfo  # noqa: E402
from kserve_kit.policy import DecisionPolicy, PolicyError, resolve_policy  # noqa: E402
from predictor import precision  # noqa: E402
from predictor.config import PredictorSettings  # noqa: E402

log = logging.getLogger(__name__)

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Sequence lengths run at start: short texts, the benchmark's ~64 tokens, and the transformer's
# default --max_length (the batch is padded to its longest text, at most max_length).
WARM_UP_LENGTHS = (16, 64, 128)
CGROUP_ROOT = Path("/sys/fs/cgroup")


def resolve_device(requested: str, dtype: str, quantize: str = "none") -> torch.device:
    """`auto` means CUDA when there is one. float16 on the CPU is refused (bfloat16 is the CPU's
    half type), and so is int8 quantization on a GPU."""
    cuda = torch.cuda.is_available()
    if requested == "cuda" and not cuda:
        raise ModelUnfit("--device cuda was asked for, but torch sees no CUDA device")
    device = torch.device(
        "cuda" if requested == "cuda" or (requested == "auto" and cuda) else "cpu"
    )
    if device.type == "cpu" and dtype == "float16":
        raise ModelUnfit(
            "--dtype float16 runs only on a GPU; on the CPU use --dtype auto, bfloat16 or float32"
        )
    if device.type == "cuda" and quantize != "none":
        raise ModelUnfit(
            f"--quantize {quantize} (torch dynamic quantization) runs on the CPU only, and this "
            "machine has a GPU: pass --device cpu to quantize, or use --dtype float16 on the GPU"
        )
    return device


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (cgroup v2 `cpu.max`, or v1 CFS quota),
    or None when there is none."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process may run on (affinity), bounded by its cgroup quota (rounded up)."""
    cpus = len(os.sched_getaffinity(0))
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit)))
    return cpus


def configure_threads(requested: int) -> int:
    """Intra-op threads: as asked, else `available_cpus()`; one inter-op thread."""
    threads = requested or available_cpus()
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or inter-op work already ran in this process
        pass
    return threads


def resolve_forward_workers(
    requested: int, device: torch.device, threads: int, traced: bool
) -> int:
    """--forward_workers 0 (auto): two forwards at once on a CPU with two threads or more,
    each on half of them (a lone forward still gets them all), when the model is traced; one
    otherwise. Measured on 2 CPUs (docs/performance.md): traced, 2 workers gave about 20 %
    more throughput under load for the same p99; eager, whose forwards hold the GIL between
    ops, 6 % more for a p99 15-25 % higher. A GPU runs one batch at a time anyway. An explicit
    number is kept."""
    if requested:
        return requested
    return 2 if device.type == "cpu" and threads >= 2 and traced else 1


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantization of every Linear layer: int8 weights with one scale per output
    channel, activations quantized per batch at run time. CPU only; embeddings and LayerNorm stay
    float32. Per-channel scales keep the demo's held-out answers identical to float32, where one
    scale per tensor lost an answer (docs/performance.md)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch points to torchao for new code; this API still works
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(
            model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
        )


def release_free_memory() -> None:
    """Hand memory that the allocator keeps after freeing (model loading, warm-up) back to the
    system, so the predictor's resident size is what it uses. glibc only; a no-op elsewhere."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def settle_memory() -> None:
    """After loading and warm-up: collect once, then move every object made so far (torch,
    transformers and kserve hold about 450,000) out of the garbage collector's reach, so a full
    collection under load scans only what requests made instead of stalling the server for
    a hundred milliseconds or more; then hand freed memory back to the system."""
    gc.collect()
    gc.freeze()
    release_free_memory()


class _Logits(torch.nn.Module):
    """The classifier as a function of (input_ids, attention_mask) -> logits, for tracing."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def torch_bf16_supported() -> bool:
    """Whether torch's oneDNN may run bfloat16 kernels on this CPU (its own check)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_dtype(config: PredictorSettings, device: torch.device) -> precision.DtypeChoice:
    """What --dtype means here: this CPU's flags and torch's own check, read once at load."""
    bf16 = precision.native_bf16(precision.read_cpu_flags(), torch_bf16_supported())
    return precision.choose_dtype(config.dtype, device.type, config.quantize, bf16)


# Texts the half-precision check runs besides random token batches: a few of the kinds of text
# a classifier meets (short, long, questions, noise), so the probes reach real activations.
PROBE_TEXTS = (
    "thanks, that fixed it",
    "my card was charged twice for the same order and nobody answers the phone",
    "how do I change the email address on my account?",
    "the package arrived broken and the box was open",
    "ok",
    "I would like to cancel my subscription before the next billing date, please",
    "asdf qwerty zxcv",
    "what time does the store open on Sundays",
)
# (rows, length) of the random token batches of the check; the first row of each is padded.
PROBE_SHAPES = ((8, 16), (8, 64), (4, 128))


def probe_batches(info: ModelInfo) -> list[tuple[np.ndarray, np.ndarray]]:
    """The half-precision check's inputs: the probe texts (when the model directory has a
    tokenizer) and seeded random token batches of several lengths, padded and not."""
    batches = []
    limit = info.max_positions or max(length for _, length in PROBE_SHAPES)
    try:
        from kserve_kit.tokenization import TextEncoder

        encoded = TextEncoder(info, min(128, limit)).encode(list(PROBE_TEXTS))
        batches.append((encoded.input_ids, encoded.attention_mask))
    except ModelUnfit:
        pass  # no tokenizer.json: the random batches alone
    rng = np.random.default_rng(0)
    top = max(3, min(info.vocab_size or 1000, 30000))
    for rows, length in PROBE_SHAPES:
        length = min(length, limit)
        ids = rng.integers(2, top, size=(rows, length), dtype=np.int64)
        mask = np.ones_like(ids)
        mask[0, length // 2 :] = 0
        batches.append((ids * mask, mask))
    return batches


def serving_policy(info: ModelInfo) -> DecisionPolicy:
    """The policy the decisions are compared under: the model directory's policy file, else
    the transformer's default threshold. (A transformer given another --policy_file decides
    under that one; the probability bound holds for any.)"""
    try:
        return resolve_policy(
            None,
            info.path,
            info.labels,
            info.version,
            DEFAULT_CONFIDENCE_THRESHOLD,
            DEFAULT_OTHERS_LABEL,
        )
    except PolicyError:  # the transformer refuses it at its start; compare under the default
        return DecisionPolicy.from_flags(DEFAULT_CONFIDENCE_THRESHOLD, DEFAULT_OTHERS_LABEL)


def _logits(model: torch.nn.Module, device: torch.device, ids, mask) -> np.ndarray:
    with torch.inference_mode():
        out = model(
            input_ids=torch.from_numpy(ids).to(device),
            attention_mask=torch.from_numpy(mask).to(device),
        ).logits
    return out.float().cpu().numpy()


def check_half_precision(
    reference: torch.nn.Module,
    candidate: torch.nn.Module,
    dtype: str,
    device: torch.device,
    info: ModelInfo,
) -> precision.Comparison:
    """The candidate's probe answers against the float32 model's."""
    batches = probe_batches(info)
    want = [_logits(reference, device, ids, mask) for ids, mask in batches]
    got = [_logits(candidate, device, ids, mask) for ids, mask in batches]
    return precision.compare(dtype, want, got, serving_policy(info), info.labels)


def load_checked(
    config: PredictorSettings, device: torch.device, choice: precision.DtypeChoice
) -> tuple[torch.nn.Module, str, str]:
    """(model, dtype that serves, why). A half type is loaded beside float32 and serves only if
    `check_half_precision` passes; float32 is then dropped, so the resident size is the half
    model's. Otherwise float32 serves, with a warning."""
    reference = AutoModelForSequenceClassification.from_pretrained(
        config.model_dir, dtype=torch.float32
    ).eval()
    if choice.dtype == "float32":
        return reference.to(device), "float32", choice.reason
    reference.to(device)
    candidate = AutoModelForSequenceClassification.from_pretrained(
        config.model_dir, dtype=TORCH_DTYPES[choice.dtype]
    ).eval()
    candidate.to(device)
    comparison = check_half_precision(
        reference, candidate, choice.dtype, device, ModelInfo.load(config.model_dir)
    )
    if comparison.passed:
        del reference
        gc.collect()
        return candidate, choice.dtype, f"{choice.reason}; {comparison.describe()}"
    log.warning(
        "%s: serving float32 instead (pass --dtype float32 to skip the check)",
        comparison.describe(),
    )
    del candidate
    gc.collect()
    return reference, "float32", f"{choice.dtype} failed its check against float32"


# Shapes a trace is checked on before it serves: (rows, length), padded and unpadded.
TRACE_CHECK_SHAPES = ((1, 1), (1, 7), (3, 19), (5, 64), (2, 128))


def trace_model(
    model: torch.nn.Module, device: torch.device, vocab_size: int | None
) -> torch.jit.ScriptModule | None:
    """The model traced into one TorchScript graph, or None where the trace cannot be trusted.

    A traced forward runs from start to end in C++: no Python between the ops, so about 2 ms
    less per forward at batch 1 on a small CPU, and the GIL free for the server's event loop
    meanwhile (docs/performance.md). A trace records one example's path through the Python
    code, so it is traced on a padded batch (the masked path, right for every input) and then
    compared with the eager model on other batch sizes and lengths, padded and not; any
    difference, or an error, keeps the eager model."""
    top = max(2, min(vocab_size or 1000, 30000))
    generator = torch.Generator().manual_seed(0)
    # The trace runs the eager model's kernels: equal in float32 up to summation order; a half
    # type rounds each op's result, so an op fused or reordered differs by its rounding step.
    half = any(p.dtype in (torch.float16, torch.bfloat16) for p in model.parameters())
    atol = 3e-2 if half else 1e-4

    def batch(rows: int, length: int, padded: bool) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.randint(2, top, (rows, length), generator=generator)
        mask = torch.ones_like(ids)
        if padded and length > 1:
            mask[0, length // 2 :] = 0  # the first row shorter than the others
            ids = ids * mask
        return ids.to(device), mask.to(device)

    wrapped = _Logits(model).eval()
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's warnings about Python values
            traced = torch.jit.trace(wrapped, batch(2, 16, padded=True), check_trace=False)
            for rows, length in TRACE_CHECK_SHAPES:
                for padded in (True, False):
                    ids, mask = batch(rows, length, padded)
                    want = wrapped(ids, mask).float()
                    got = traced(ids, mask).float()
                    if got.shape != want.shape or not torch.allclose(got, want, atol=atol):
                        log.warning(
                            "the traced model differs from the eager one at %s rows x %s "
                            "tokens: serving the eager model",
                            rows,
                            length,
                        )
                        return None
    except Exception as exc:  # noqa: BLE001 - any architecture the tracer cannot follow
        log.warning("the model cannot be traced (%s): serving the eager model", exc)
        return None
    return traced


@dataclass
class TorchRuntime:
    model: torch.nn.Module
    device: torch.device
    threads: int
    forward_workers: int = 1
    traced: torch.jit.ScriptModule | None = None
    dtype: str = "float32"  # what serves (after --dtype auto and the check against float32)
    summary: str = ""  # what serves and why, in words: the start-up line

    @classmethod
    def load(cls, config: PredictorSettings) -> TorchRuntime:
        quantize = config.quantize
        device = resolve_device(config.device, config.dtype, quantize)
        threads = configure_threads(config.torch_threads)
        choice = resolve_dtype(config, device)
        if choice.warning:
            log.warning("%s", choice.warning)
        model, dtype, why = load_checked(config, device, choice)
        if quantize == "int8":
            model = quantize_int8(model)
        release_free_memory()
        traced = None
        if config.compile == "trace":
            traced = trace_model(model, device, getattr(model.config, "vocab_size", None))
        workers = resolve_forward_workers(
            config.forward_workers, device, threads, traced is not None
        )
        summary = (
            f"{config.model_dir} on {device}: {dtype}"
            f"{' with int8 dynamic quantization' if quantize == 'int8' else ''}, "
            f"{'traced' if traced is not None else 'eager'}, {threads} threads, {workers} "
            f"forward workers, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')} "
            f"(dtype: {why})"
        )
        log.info("serving %s", summary)
        return cls(
            model=model,
            device=device,
            threads=threads,
            forward_workers=workers,
            traced=traced,
            dtype=dtype,
            summary=summary,
        )

    def thread_plan(self, workers: int) -> Callable[[bool], None]:
        """What the batcher's forward threads run before each forward: a forward that runs
        alone gets every intra-op thread, one of several forwards at once its share of them, so
        that the forwards together never run more threads than there are CPUs. OpenMP keeps the
        thread count per calling thread, and setting it costs well under a microsecond."""
        share = max(1, self.threads // workers)

        def before_forward(alone: bool) -> None:
            wanted = self.threads if alone else share
            if torch.get_num_threads() != wanted:
                torch.set_num_threads(wanted)

        return before_forward

    @property
    def type_vocab_size(self) -> int | None:
        return getattr(self.model.config, "type_vocab_size", None)

    def forward(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        token_type_ids: np.ndarray | None = None,
    ) -> np.ndarray:
        """Logits as float32 numpy `[N, C]`. Blocking: call it off the event loop."""
        ids = torch.from_numpy(input_ids).to(self.device, non_blocking=True)
        mask = torch.from_numpy(attention_mask).to(self.device, non_blocking=True)
        with torch.inference_mode():
            if self.traced is not None and token_type_ids is None:
                logits = self.traced(ids, mask)
            else:  # eager: no trace, or token_type_ids, which the traced graph does not take
                inputs = {"input_ids": ids, "attention_mask": mask}
                if token_type_ids is not None:  # passed only when sent: not every model takes it
                    inputs["token_type_ids"] = torch.from_numpy(token_type_ids).to(
                        self.device, non_blocking=True
                    )
                logits = self.model(**inputs).logits
        # The one host synchronisation per batch: copying the result back.
        return logits.float().cpu().numpy()

    def warm_up(self, max_rows: int) -> None:
        """Run the shapes the server will see first, so the first request is not the slow one:
        one row at each warm-up length, and a full batch at the shorter ones (a full batch of
        the longest costs seconds on a small CPU and teaches it nothing new). On a GPU this also
        makes the CUDA context, the kernels' handles and the caching allocator's blocks."""
        limit = getattr(self.model.config, "max_position_embeddings", None) or max(WARM_UP_LENGTHS)
        lengths = sorted({min(n, limit) for n in WARM_UP_LENGTHS})
        shapes = [(1, n) for n in lengths] + [(max_rows, n) for n in lengths[:2] if max_rows > 1]
        for rows, length in shapes:
            ids = np.ones((rows, length), dtype=np.int64)
            self.forward(ids, np.ones_like(ids))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        settle_memory()
