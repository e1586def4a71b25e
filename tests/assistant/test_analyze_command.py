"""`allo analyze`: JSON lines or plain lines in, one JSON object per line out, in order."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from allo.assistant.analysis import Analyzer

FIELDS = {
    "text",
    "language",
    "intent",
    "sub_intent",
    "confidence",
    "sentiment",
    "flags",
    "escalate",
    "reasons",
}


def _analyze(stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "allo", "analyze", *args],
        input=stdin,
        env={**os.environ, "ALLO_MODE": "dev"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_json_lines_and_plain_lines_keep_their_order_and_extra_fields(analyzer: Analyzer) -> None:
    del analyzer  # the fixture makes sure the model exists
    lines = [
        json.dumps({"id": 1, "text": "je n'ai plus de réseau depuis ce matin"}, ensure_ascii=False),
        "comment avoir mon code PUK",
        "",
        json.dumps({"id": 3, "text": "je veux résilier, mon avocat va vous écrire"}, ensure_ascii=False),
    ]
    result = _analyze("\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 3
    assert all(set(row) >= FIELDS for row in rows)
    assert rows[0]["id"] == 1 and rows[0]["intent"] == "technical"
    assert rows[1]["text"] == "comment avoir mon code PUK" and rows[1]["sub_intent"] == "puk_code"
    assert rows[2]["id"] == 3 and rows[2]["escalate"] is True and "legal" in rows[2]["flags"]
    for row in rows:
        assert -1 <= row["sentiment"] <= 1 and 0 <= row["confidence"] <= 1
        assert set(row["flags"]) <= {"legal", "urgent", "outage", "cancellation", "human_requested"}


def test_bad_lines_are_reported_on_stderr_and_skipped(analyzer: Analyzer) -> None:
    del analyzer
    lines = [json.dumps({"no_text": True}), "x" * (70 * 1024), "bonjour"]
    result = _analyze("\n".join(lines) + "\n")
    assert result.returncode == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["text"] for row in rows] == ["bonjour"]
    assert "line 1" in result.stderr and "line 2" in result.stderr


def test_a_missing_model_is_a_clear_error(tmp_path: object) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "allo", "analyze"],
        input="bonjour\n",
        env={**os.environ, "ALLO_MODE": "dev", "ALLO_NLU_MODEL_PATH": f"{tmp_path}/none.npz"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "allo nlu train" in result.stderr
