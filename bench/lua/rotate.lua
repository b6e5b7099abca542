-- Sends a different pre-minted token on every request (wrk ... -s rotate.lua -- TOKEN_FILE
-- [PATH]): to PATH, by default nginx's /index.html (`make profile` sends the checks to /auth).
local tokens = {}
local next_index = 1
local path = "/index.html"

function init(args)
  path = args[2] or path
  for line in io.lines(args[1]) do
    tokens[#tokens + 1] = line
  end
  -- Each connection starts elsewhere in the list, so connections do not repeat each other.
  next_index = math.random(#tokens)
end

function request()
  next_index = next_index % #tokens + 1
  return wrk.format("GET", path, {
    ["Approov-Token"] = tokens[next_index],
    ["Authorization"] = "Bearer bench-user",
  })
end
