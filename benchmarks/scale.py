"""Scale benchmark: a store of N synthetic articles (default 40,000: about a million sentences).

Runs the real ``talksbot`` command in subprocesses, as an operator would, and prints:

- bulk ingest rate (sentences/s) and the ingest process's peak memory;
- ``talksbot ingest`` of one more article (whole process) and its peak memory;
- cold ``talksbot ask`` (whole process, median of 3);
- warm answers: p50/p95 over distinct questions (the dev set's, each asked once, after two
  warm-up questions) asked one at a time to one ``talksbot ask --json`` process, and that
  process's peak memory;
- the real model's ingest rate (sentences/s) on the first ``--real`` articles, so the cost of a
  backfill with the default model is known.

The store and index are measured with the model-free ``hash`` backend (``TALKSBOT_BACKEND``),
except in the real-model line. Articles come from ``../shared/bench/synth_corpus.py``.

usage: python benchmarks/scale.py [--articles 40000] [--real 2000] [--work DIR] [--store DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
QUESTIONS = [
    "How much of Donetsk does Russia hold?",
    "Why was the Budapest summit called off?",
    "Who mediates the peace talks?",
    "What did Zelensky say about security guarantees?",
    "Where were the latest talks held?",
    "How many civilians have been killed?",
    "What sanctions target Russian oil?",
    "When did the Geneva round start?",
    "What happened at the Zaporizhzhia nuclear plant?",
    "Is there a ceasefire in the energy war?",
]


def talksbot() -> list[str]:
    exe = Path(sys.executable).parent / "talksbot"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "talksbot.cli"]


def env_for(data_dir: Path, backend: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TALKSBOT_", "TELEGRAM_"))}
    env.update(TALKSBOT_DATA_DIR=str(data_dir), TALKSBOT_BACKEND=backend, HF_HUB_OFFLINE="1")
    return env


CPU_SECONDS: list[float] = []  # CPU time (user + system) of each run_measured child, in order


def run_measured(args: list[str], env: dict[str, str], stdin: str = "") -> tuple[float, float, str]:
    """Like ``run`` but reaps the child with wait4 to read its own peak RSS (and its CPU
    time, with its reaped children's: what the figure costs on a machine shared with others)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        args,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin and proc.stdout and proc.stderr
    proc.stdin.write(stdin)
    proc.stdin.close()
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    CPU_SECONDS.append(usage.ru_utime + usage.ru_stime)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}): {err.strip()[-500:]}")
    return seconds, usage.ru_maxrss / 1024, out


def sentences_indexed(out: str) -> int:
    match = re.search(r"(\d+) sentences? indexed", out)
    return int(match.group(1)) if match else 0


def synth(n: int, target: Path, seed: int) -> Path:
    marker = target / f".complete-{n}-{seed}"
    if not marker.exists():
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run(
            [
                sys.executable,
                str(SHARED / "bench" / "synth_corpus.py"),
                str(SHARED / "corpus"),
                str(n),
                str(target),
                str(seed),
            ],
            check=True,
        )
        marker.touch()
    return target


def distinct_questions() -> list[str]:
    """Questions asked once each: the dev questions (no two alike, so no per-question or
    per-unit cache of an earlier question can answer for a later one)."""
    path = SHARED / "eval" / "questions-dev.jsonl"
    if not path.exists():
        return QUESTIONS
    lines = path.read_text().splitlines()
    return list(dict.fromkeys(json.loads(line)["question"] for line in lines if line.strip()))


def warm_answers(data_dir: Path, backend: str, warmup: int) -> tuple[list[float], float]:
    """Per-question latency over one ``talksbot ask --json`` process, each question asked once
    after ``warmup`` others, and the process's peak RSS (MB)."""
    proc = subprocess.Popen(
        [*talksbot(), "ask", "--json"],
        env=env_for(data_dir, backend),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )
    assert proc.stdin and proc.stdout
    times = []
    asked = QUESTIONS[:warmup] + [q for q in distinct_questions() if q not in QUESTIONS[:warmup]]
    for i, question in enumerate(asked):
        started = time.perf_counter()
        proc.stdin.write(question + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        elapsed = time.perf_counter() - started
        json.loads(line)
        if i >= warmup:  # the first questions load what every answer needs
            times.append(elapsed)
    proc.stdin.close()
    proc.stdout.read()
    _, _, usage = os.wait4(proc.pid, 0)
    return times, usage.ru_maxrss / 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=40_000)
    parser.add_argument("--real", type=int, default=2_000, help="articles for the real model")
    parser.add_argument("--work", type=Path, default=Path("/tmp/talksbot-scale"))
    parser.add_argument(
        "--warmup", type=int, default=2, help="questions asked before the timed ones"
    )
    parser.add_argument(
        "--store",
        type=Path,
        help="measure this existing hash-backend data dir instead (no bulk ingest line; the "
        "one more article is added to it)",
    )
    args = parser.parse_args()
    if not (SHARED / "bench" / "synth_corpus.py").exists():
        raise SystemExit(f"{SHARED / 'bench' / 'synth_corpus.py'} not found")

    args.work.mkdir(parents=True, exist_ok=True)
    data = args.store or args.work / f"store-{args.articles}"
    extra = synth(1, args.work / "corpus-extra", seed=99)
    if args.store:  # an article this store does not hold yet
        import sqlite3

        db = sqlite3.connect(f"file:{data / 'talksbot.db'}?mode=ro", uri=True)
        held = db.execute("SELECT COUNT(*) FROM articles").fetchone()[0]
        db.close()
        extra = synth(1, args.work / f"corpus-extra-{held}", seed=1000 + held)
    hash_env = env_for(data, "hash")
    # The machine may be shared: the load says how far figures are from an idle machine's.
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    if args.store:
        print(
            f"scale benchmark: existing store {data}, hash backend, {os.cpu_count()} cores, "
            f"load average {load}"
        )
    else:
        corpus = synth(args.articles, args.work / f"corpus-{args.articles}", seed=7)
        shutil.rmtree(data, ignore_errors=True)
        print(
            f"scale benchmark: {args.articles:,} synthetic articles, hash backend, "
            f"{os.cpu_count()} cores, load average {load}"
        )
        seconds, rss, out = run_measured([*talksbot(), "ingest", str(corpus)], hash_env)
        n = sentences_indexed(out)
        print(
            f"bulk ingest           {seconds:8.1f} s   {n:,} sentences   "
            f"{n / seconds:8.0f} sentences/s   peak {rss:6.0f} MB   CPU {CPU_SECONDS[-1]:.0f} s"
        )

    seconds, rss, out = run_measured([*talksbot(), "ingest", str(extra)], hash_env)
    print(
        f"ingest one more       {seconds:8.2f} s   ({out.strip().splitlines()[-1][:60]})"
        f"   peak {rss:6.0f} MB"
    )

    colds = []
    for question in QUESTIONS[:3]:
        seconds, rss, _ = run_measured([*talksbot(), "ask", question], hash_env)
        colds.append((seconds, rss))
    print(
        f"cold ask (median of 3) {statistics.median(s for s, _ in colds):7.2f} s"
        f"   peak {max(r for _, r in colds):6.0f} MB"
    )

    times, rss = warm_answers(data, "hash", args.warmup)
    print(
        f"warm answer           p50 {percentile(times, 0.5) * 1000:6.1f} ms"
        f"   p95 {percentile(times, 0.95) * 1000:6.1f} ms   ({len(times)} distinct questions)"
        f"   peak {rss:6.0f} MB (process answering)"
    )

    if args.real:
        real_corpus = args.work / f"corpus-real-{args.real}"
        if not (real_corpus / ".complete").exists():
            shutil.rmtree(real_corpus, ignore_errors=True)
            real_corpus.mkdir()
            source = synth(args.articles, args.work / f"corpus-{args.articles}", seed=7)
            for f in sorted(source.glob("*.md"))[: args.real]:
                (real_corpus / f.name).write_bytes(f.read_bytes())
            (real_corpus / ".complete").touch()
        real_data = args.work / "store-real"
        shutil.rmtree(real_data, ignore_errors=True)
        env = env_for(real_data, os.environ.get("TALKSBOT_BENCH_BACKEND", "onnx"))  # the default
        env["TALKSBOT_MODEL_CACHE"] = str(args.work / "models")
        seconds, rss, out = run_measured([*talksbot(), "ingest", str(real_corpus)], env)
        n = sentences_indexed(out)
        print(
            f"real-model ingest     {seconds:8.1f} s   {n:,} sentences   {n / seconds:8.1f} "
            f"sentences/s   ({args.real:,} articles, {env['TALKSBOT_BACKEND']}, "
            f"CPU {CPU_SECONDS[-1]:.0f} s)"
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average at the end {load}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
