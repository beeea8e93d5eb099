"""What ``params.json`` records about how a store was built, so a process never mixes vectors of
two models. Shared by the write side (ingest records it) and the read side (search checks it),
without the read side importing the ingest pipeline."""

from __future__ import annotations

# Each sentence and heading is embedded twice, alone and after its article title (and section
# heading); the stored vector is the mean, so one inner product scores both. Boilerplate-marked
# units are embedded alone (menus repeat across articles: one embedding per distinct text), and
# indexed too: the mark is a ranking feature.
EMBED_CONTEXT = "mean(sentence, title+sentence); boilerplate alone"


def mismatches(wanted: dict, found: dict, wanted_as: str, found_as: str) -> list[str]:
    """One ``key: <wanted_as> X, <found_as> has Y`` line per setting that differs."""
    return [
        f"{key}: {wanted_as} {value!r}, {found_as} has {found.get(key)!r}"
        for key, value in wanted.items()
        if found.get(key) != value
    ]


def ingest_params(backend: str) -> dict:
    """What params.json records for a store built with ``backend``."""
    from index.embed import model_params

    return {**model_params(backend), "context": EMBED_CONTEXT}
