#!/usr/bin/env bash
# PPO/REINFORCE++ with OpenRLHF, rewarded by Arbiter's rule-based reward over HTTP.
#
# 1. Serve the reward (weights from `arbiter rbr fit` / `arbiter rbr run`):
#      arbiter reward serve --weights weights.json --addr 0.0.0.0:5000
# 2. A prompt dataset whose label column holds each prompt's response type (hard_refuse,
#    safe_refuse_1, safe_refuse_2, comply), or a JSON object {"response_type": ..., "base_reward": ...}
#    to add a reward model's score. Without labels, start the server with
#    --default-response-type.
# 3. Point the trainer at /get_reward (OpenRLHF posts {"query", "prompts", "labels"} and reads
#    "rewards", "scores" and "extra_logs"; the completion is the query after its prompt).
#
# The paths and sizes below are placeholders for your setup; only --remote_rm_url and
# --label_key concern Arbiter. `check_remote_rm.py` sends the same request the trainer sends.
set -euo pipefail
ARBITER=${ARBITER:-http://127.0.0.1:5000}

python3 -m openrlhf.cli.train_ppo_ray \
  --pretrain "${POLICY_MODEL:?set POLICY_MODEL}" \
  --remote_rm_url "$ARBITER/get_reward" \
  --prompt_data "${PROMPT_DATA:?set PROMPT_DATA}" \
  --input_key prompt \
  --label_key response_type \
  --apply_chat_template \
  --advantage_estimator reinforce_baseline \
  --n_samples_per_prompt 4 \
  --save_path "${SAVE_PATH:-./checkpoint/arbiter-rbr}"
