#!/usr/bin/env bash
# Peak memory and time of `arbiter grade` (embedded grader) on one sample whose completion is
# SIZE_MB megabytes of prose (default 50), against the same grader on the bundled examples.
# Needs the model (scripts/setup-models.sh) and GNU time. Usage: scripts/bench/grade_memory.sh [SIZE_MB] [ARBITER]
set -euo pipefail
size_mb=${1:-50}
bin=${2:-target/release/arbiter}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$size_mb" > "$dir/big.jsonl" <<'PY'
import json, sys
target = int(sys.argv[1]) * 1_000_000
words = ["lorem", "ipsum", "dolor", "sit", "amet,", "consectetur", "adipiscing", "elit."]
parts, n = [], 0
while n < target:
    w = words[len(parts) % len(words)]
    parts.append(w)
    n += len(w) + 1
print(json.dumps({"id": "big", "response_type": "comply",
                  "prompt": [{"role": "user", "content": "Tell me a long story."}],
                  "completion": " ".join(parts)}))
PY
for input in "$dir/big.jsonl" examples/conversations.jsonl; do
    /usr/bin/time -f "%M KB peak RSS, %e s" "$bin" grade "$input" --max-sample-bytes 1000000000 \
        --out "$dir/grades.jsonl" 2>&1 | grep -E "peak RSS" | sed "s|^|$(basename "$input") ($(stat -c %s "$input") bytes): |"
done
