-- Sends a different pre-minted token on every request (wrk ... -s rotate.lua -- TOKEN_FILE).
local tokens = {}
local next_index = 1

function init(args)
  for line in io.lines(args[1]) do
    tokens[#tokens + 1] = line
  end
  -- Each connection starts elsewhere in the list, so connections do not repeat each other.
  next_index = math.random(#tokens)
end

function request()
  next_index = next_index % #tokens + 1
  return wrk.format("GET", "/index.html", {
    ["Approov-Token"] = tokens[next_index],
    ["Authorization"] = "Bearer bench-user",
  })
end
