-- Counts answers other than the expected status (wrk ... -s expect.lua -- STATUS TOKEN BINDING).
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  expected = tonumber(args[1])
  unexpected = 0
  wrk.headers["Approov-Token"] = args[2]
  wrk.headers["Authorization"] = args[3]
end

function response(status, headers, body)
  if status ~= expected then
    unexpected = unexpected + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("unexpected")
  end
  io.write(string.format("unexpected %d\n", total))
end
