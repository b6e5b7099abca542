-- Sends each pre-signed check once, in order, and counts the answers by X-Approov-Reason
-- (wrk -t1 ... -s once.lua -- REQUESTS_FILE PATH). A line of the file is one request's
-- headers, `Name: value` separated by tabs. Past the end it starts again: replays.
local requests = {}
local next_index = 0
local threads = {}
reasons = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  path = args[2]
  for line in io.lines(args[1]) do
    local headers = {}
    for name, value in line:gmatch("([^\t:]+): ([^\t]*)") do
      headers[name] = value
    end
    requests[#requests + 1] = headers
  end
end

function request()
  next_index = next_index % #requests + 1
  return wrk.format("GET", path, requests[next_index])
end

function response(status, headers, body)
  local reason = headers["x-approov-reason"] or ("status " .. status)
  reasons[reason] = (reasons[reason] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("p50 %d\np99 %d\n", latency:percentile(50), latency:percentile(99)))
  for _, thread in ipairs(threads) do
    for reason, count in pairs(thread:get("reasons")) do
      io.write(string.format("reason %s %d\n", reason, count))
    end
  end
end
