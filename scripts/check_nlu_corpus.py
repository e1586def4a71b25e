"""Checks the NLU corpus files against data/nlu/README.md: labels, fields, duplicates, balance."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

SUB_INTENTS = {
    "billing": {"invoice_copy", "bill_explanation", "out_of_plan_charges", "double_charge", "payment_failed",
                "payment_method", "refund", "payment_plan", "price_increase"},
    "technical": {"no_network", "slow_data", "no_data", "calls_failing", "sms_mms", "voicemail", "puk_code",
                  "sim_activation", "esim", "apn_settings", "roaming", "lost_stolen", "sim_fraud"},
    "plan": {"plan_change", "plan_info", "data_topup", "plan_option", "prepaid_recharge"},
    "cancellation": {"cancel_line", "porting_code", "cancel_option", "cancellation_fees"},
    "delivery": {"order_tracking", "delivery_problem", "pickup_point", "return", "replacement_sim"},
    "other": {"greeting", "thanks", "account_access", "store_info", "personal_data", "unrelated"},
}  # fmt: skip
SENTIMENTS = {"very_negative", "negative", "neutral", "positive"}
FLAGS = {"legal", "urgent", "outage", "cancellation", "human_requested"}
REGISTERS = {"formal", "casual", "sms", "typos", "caps", "emoji", "mastodon"}
FIELDS = {"text", "language", "intent", "sub_intent", "sentiment", "flags", "register"}


def check(paths: list[Path]) -> int:
    errors = 0
    seen: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for path in paths:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                print(f"{where}: not JSON ({exc})")
                errors += 1
                continue
            problems = []
            if set(row) != FIELDS:
                problems.append(f"fields {sorted(set(row) ^ FIELDS)}")
            if row.get("language") not in ("fr", "en"):
                problems.append(f"language {row.get('language')!r}")
            if row.get("intent") not in SUB_INTENTS:
                problems.append(f"intent {row.get('intent')!r}")
            elif row.get("sub_intent") not in SUB_INTENTS[row["intent"]]:
                problems.append(f"sub_intent {row.get('sub_intent')!r} for {row['intent']}")
            if row.get("sentiment") not in SENTIMENTS:
                problems.append(f"sentiment {row.get('sentiment')!r}")
            if not isinstance(row.get("flags"), list) or set(row.get("flags", [])) - FLAGS:
                problems.append(f"flags {row.get('flags')!r}")
            if row.get("register") not in REGISTERS:
                problems.append(f"register {row.get('register')!r}")
            text = str(row.get("text", "")).strip()
            if not text:
                problems.append("empty text")
            key = " ".join(text.lower().split())
            if key in seen:
                problems.append(f"duplicate of {seen[key]}")
            seen[key] = where
            if problems:
                print(f"{where}: " + "; ".join(problems))
                errors += 1
            else:
                counts[f"{row['intent']}/{row['sub_intent']}"] += 1
                counts[f"lang:{row['language']}"] += 1
                counts[f"register:{row['register']}"] += 1
                counts[f"sentiment:{row['sentiment']}"] += 1
                for flag in row["flags"]:
                    counts[f"flag:{flag}"] += 1
    for key, value in sorted(counts.items()):
        print(f"{key:40} {value}")
    print(f"{len(seen)} examples, {errors} with problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(check([Path(p) for p in sys.argv[1:]]))
