-- wrk script for the annotation server's load benchmark (see bench/server-load.sh).
-- Every request submits one label, POST /api/annotations with the rater's session cookie and
-- CSRF header, for an item served to that rater by bench/server_load_setup.py. Each line of
-- the work file (COOKIE CSRF ITEM_ID) is used once; wrk's threads take every k-th line.
-- Usage: wrk -t T ... -s bench/submit.lua URL -- WORK_FILE T

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

local work = {}
local next_index = 0

function init(args)
  local path, threads = args[1], tonumber(args[2] or "1")
  local i = 0
  for line in io.lines(path) do
    if i % threads == tid - 1 then
      work[#work + 1] = line
    end
    i = i + 1
  end
end

function request()
  next_index = next_index + 1
  local line = work[next_index]
  if line == nil then
    -- Out of prepared work: an item nobody was served, refused with 403 and counted by wrk
    -- as a non-2xx response, so a short work file cannot pass unnoticed.
    line = "none none 0"
  end
  local cookie, csrf, item = line:match("(%S+) (%S+) (%S+)")
  return wrk.format("POST", "/api/annotations", {
    ["Cookie"] = "arbiter_session=" .. cookie,
    ["X-CSRF-Token"] = csrf,
    ["Content-Type"] = "application/json",
  }, '{"item_id":' .. item .. ',"label":"toxic"}')
end

function done(summary, latency, requests)
  local ok = summary.requests - summary.errors.status
  io.write(string.format(
    "submissions: %d in %.2f s = %.0f/s, non-2xx %d, socket errors %d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  io.write(string.format("latency ms: p50 %.2f, p90 %.2f, p99 %.2f, p99.9 %.2f, max %.2f\n",
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency:percentile(99.9) / 1e3, latency.max / 1e3))
  io.write(string.format("acknowledged: %d\n", ok))
end
