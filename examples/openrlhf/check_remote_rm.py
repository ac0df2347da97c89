"""Send a reward server the request OpenRLHF's trainer sends, and read the answer the way it
reads it (openrlhf/utils/agent.py: SingleTurnAgentExecutor._fetch_rewards_via_http and the
reward handling in execute). Prints one JSON object per query: reward, scores, extra_logs.

    python3 check_remote_rm.py http://127.0.0.1:5000/get_reward QUERIES.json

QUERIES.json: [{"query": ..., "prompt": ..., "label": ...}, ...]. Standard library only.
"""

import json
import sys
import urllib.request


def fetch(url, queries, prompts, labels):
    # The trainer posts one query per request (a list of one), with this exact payload.
    payload = {"query": queries, "prompts": prompts, "labels": labels}
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=180) as response:
        return json.load(response)


def main():
    url, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        items = json.load(f)
    for item in items:
        rewards_info = fetch(url, [item["query"]], [item["prompt"]], [item["label"]])
        score_value = rewards_info.get("scores")
        if score_value is None:
            score_value = rewards_info.get("rewards")
        out = {
            "reward": rewards_info.get("rewards"),
            "scores": score_value,
            "extra_logs": rewards_info.get("extra_logs") or {},
        }
        # The trainer wraps each in a tensor of one sample: each must be a list of one number.
        for key in ("reward", "scores"):
            value = out[key]
            assert isinstance(value, list) and len(value) == 1, (key, value)
            assert isinstance(value[0], (int, float)), (key, value)
        for key, value in out["extra_logs"].items():
            assert isinstance(value, list) and len(value) == 1, (key, value)
        print(json.dumps(out))


if __name__ == "__main__":
    main()
