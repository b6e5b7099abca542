-- The same request at a fixed pace per connection (wrk ... -s paced.lua -- DELAY_MS TOKEN).
local delay_ms = 0
local headers = {}

function init(args)
  delay_ms = tonumber(args[1])
  headers = {["Approov-Token"] = args[2], ["Authorization"] = "Bearer bench-user"}
end

function request()
  return wrk.format("GET", "/index.html", headers)
end

function delay()
  return delay_ms
end
