"""End to end with the real bundled all-MiniLM-L6-v2 (exported to ONNX once per run), on the
default backend."""

import json
from pathlib import Path

import numpy as np
import pytest

from index.embed import DEFAULT_BACKEND, load_embedder
from tests.harness.data import CORPUS, run_cli

pytestmark = pytest.mark.model


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_onnx_embeddings_match_sentence_transformers(model_cache: Path, backend: str) -> None:
    texts = [
        "The second day of talks in Geneva ended after just two hours.",
        "Engineers expect the repairs to take about a week.",
        "Bake the sourdough at 230 degrees.",
    ]
    fast = load_embedder(backend, model_cache).embed(texts)
    reference = load_embedder("torch", model_cache).embed(texts)
    assert fast.shape == reference.shape == (3, 384)
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-4)
    agreement = (fast * reference).sum(axis=1)
    assert agreement.min() > (0.9999 if backend == "onnx" else 0.9)
    # Related sentences are closer than unrelated ones, as with the reference model.
    query = load_embedder(backend, model_cache).embed(["How long did the Geneva talks last?"])
    sims = fast @ query[0]
    assert sims[0] > sims[1] > sims[2]


def test_cli_with_the_real_model(data_dir: Path, model_cache: Path) -> None:
    env = {"TALKSBOT_MODEL_CACHE": str(model_cache)}
    result = run_cli(data_dir, "ingest", str(CORPUS), backend=DEFAULT_BACKEND, **env)
    assert result.returncode == 0, result.stderr
    assert "3 articles added" in result.stdout
    questions = [
        "how long did negotiators meet on the second day in geneva",  # paraphrase
        "why was a ceasefire arranged around the nuclear plant?",
        "who would monitor a truce?",
        "What did Erdogan say about the talks?",  # a name the corpus never mentions
        "what's a good recipe for banana bread",  # off topic
        "Who would monitor a truce",  # the third, without its "?": the same question
    ]
    result = run_cli(
        data_dir, "ask", "--json", stdin="\n".join(questions), backend=DEFAULT_BACKEND, **env
    )
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["answered"] for a in answers] == [True, True, True, False, False, True]
    # Scores and all: "?" or not, one vector (``search.embedding_text``).
    assert answers[5]["citations"] == answers[2]["citations"]
    assert "two hours" in answers[0]["citations"][0]["quote"]
    # The reason sits in the next paragraph: the quote is two adjacent sentences, verbatim.
    assert "restoring the backup power line" in answers[1]["citations"][0]["quote"]
    assert "led primarily by the Americans" in answers[2]["citations"][0]["quote"]
    params = json.loads((data_dir / "params.json").read_text())
    assert params["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert params["backend"] == DEFAULT_BACKEND == "onnx"


def test_main_job_on_a_fresh_data_dir(tmp_path: Path, model_cache: Path) -> None:
    data_dir = tmp_path / "fresh"
    result = run_cli(
        data_dir,
        stdin="Why was the Budapest summit called off?\nwho won the champions league final\n",
        backend="",  # unset, as the README's first command runs it
        script="bot.py",
        TALKSBOT_MODEL_CACHE=str(model_cache),
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.strip().split("\n\n", 1)
    assert first.startswith("[1] “Plans for a Trump-Putin summit in Budapest have been paused")
    assert "Nothing in the coverage I have comes close" in second
    assert json.loads((data_dir / "params.json").read_text())["backend"] == DEFAULT_BACKEND
