"""The ``guichet`` command: predict never crashes on a line, eval prints its figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def guichet(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], input=stdin, capture_output=True, cwd=ROOT, timeout=300
    )


def test_predict_answers_every_line_in_order() -> None:
    lines = [
        json.dumps({"text": "je cherche un logement"}).encode(),
        json.dumps({"text": ""}).encode(),
        json.dumps({"text": "😀😀"}).encode(),
        json.dumps({"text": "x" * 20_000}).encode(),
        json.dumps({"text": "\u0000\u0007 bell"}).encode(),
        b'{"text": "caf\xff\xfe invalid utf8"}',
        b"not json at all",
        json.dumps({"text": "my husband hits me, I am scared"}).encode(),
    ]
    result = guichet("nlu", "predict", "-", stdin=b"\n".join(lines) + b"\n")
    assert result.returncode == 0, result.stderr.decode()
    out = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(out) == len(lines)
    assert out[0]["intent"] == "housing_search" and out[0]["decision"] == "answer"
    assert set(out[0]) == {"text", "intent", "confidence", "decision", "lang", "ranking"}
    assert len(out[0]["ranking"]) == 3
    assert out[6]["error"]
    assert out[7]["intent"] == "emergency"
    for row in out[1:6]:
        assert row["decision"] in {"answer", "clarify", "handoff"}


def test_eval_prints_per_language_figures(tmp_path: Path) -> None:
    data = tmp_path / "small.jsonl"
    rows = [
        {"text": "ou trouver un appartement", "intent": "housing_search", "lang": "fr"},
        {"text": "what is the capital of peru", "intent": "out_of_scope", "lang": "en"},
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    result = guichet("nlu", "eval", str(data), "--json")
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    assert set(report["by_language"]) == {"fr", "en"}
    assert report["overall"]["messages"] == 2
