-- Counts answers other than the expected status:
--   wrk ... -s expect.lua -- STATUS ['Name: value' ...]
-- each further argument a header every request carries.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  expected = tonumber(args[1])
  unexpected = 0
  seen = ""
  for i = 2, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    wrk.headers[name] = value
  end
end

function response(status, headers, body)
  if status ~= expected then
    unexpected = unexpected + 1
    if unexpected <= 20 then
      seen = seen .. " " .. status
    end
  end
end

function done(summary, latency, requests)
  local total = 0
  local statuses = ""
  for _, thread in ipairs(threads) do
    total = total + thread:get("unexpected")
    statuses = statuses .. thread:get("seen")
  end
  -- the first 20 unexpected statuses of each thread
  io.write(string.format("unexpected %d statuses:%s\n", total, statuses))
end
