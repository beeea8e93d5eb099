"""The package layout's promises: what loads what."""

import subprocess
import sys

from tests.harness.data import ROOT


def loaded_after(code: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return set(result.stdout.split())


def test_retrieval_loads_no_telegram_and_no_ingest_pipeline() -> None:
    modules = loaded_after(
        "import retrieval.search, retrieval.answer, retrieval.topics, retrieval.evaluate"
    )
    assert not {m for m in modules if m.split(".")[0] in ("telegram", "talksbot", "bot")}
    assert not modules & {"index.ingest", "index.segment", "index.loaders", "syntok"}


def test_the_cli_does_not_import_the_entry_point() -> None:
    assert "bot" not in loaded_after("import talksbot.cli")
