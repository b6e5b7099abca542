-- authsvc in front of HAProxy (2.6+): `http-request lua.approov <check path>` asks authsvc
-- whether the request may go on, the way nginx's auth_request does.
--
-- The check is a GET of <check path> to authsvc at APPROOV_AUTHSVC (HOST:PORT; haproxy.cfg sets
-- it with `setenv`), with every header of the client but the ones HAProxy sets itself (below)
-- and no body. The check path is authsvc's policy (`/auth`, `/auth-binding-off`,
-- `/auth-signing-required`, ...), chosen by the configuration for the route, never by the client.
--
-- Answers: 2xx -> the request goes on, `X-Approov-Did` set from authsvc's answer (a client's copy
-- is always removed); 401 or 403 -> 401 to the client; anything else, authsvc down or slower than
-- APPROOV_AUTHSVC_TIMEOUT_SECONDS -> 503 (fail closed).

-- What HAProxy tells authsvc of the client's request: a client's copy of any of these is
-- dropped, so nothing a client sends can change the method, URL or length authsvc checks a
-- signature against. Hop-by-hop and framing headers are the check's own.
local SET_BY_HAPROXY = {
    ["x-original-method"] = true,
    ["x-original-uri"] = true,
    ["x-original-url"] = true,
    ["x-forwarded-method"] = true,
    ["x-forwarded-uri"] = true,
    ["x-forwarded-proto"] = true,
    ["x-forwarded-host"] = true,
    ["x-approov-routed-host"] = true,
    ["x-original-content-length"] = true,
    ["x-approov-did"] = true,
    ["content-length"] = true,
    ["transfer-encoding"] = true,
    ["connection"] = true,
    ["expect"] = true,
    ["te"] = true,
    ["upgrade"] = true,
    ["keep-alive"] = true,
}

local AUTHSVC_HOST, AUTHSVC_PORT = (os.getenv("APPROOV_AUTHSVC") or "127.0.0.1:8002"):match("^(.+):(%d+)$")
local TIMEOUT_SECONDS = tonumber(os.getenv("APPROOV_AUTHSVC_TIMEOUT_SECONDS") or "2")

local function first(headers, name)
    local values = headers[name]
    return values and values[0]
end

-- The check's request head: the client's headers (every copy) but SET_BY_HAPROXY, then what
-- HAProxy tells authsvc of the client's request.
local function check_request(txn, check_path)
    local lines = {"GET " .. check_path .. " HTTP/1.1", "host: " .. AUTHSVC_HOST, "connection: close"}
    local client = txn.http:req_get_headers()
    for name, values in pairs(client) do
        if not SET_BY_HAPROXY[name] and name ~= "host" then
            local i = 0
            while values[i] ~= nil do
                lines[#lines + 1] = name .. ": " .. values[i]
                i = i + 1
            end
        end
    end
    -- In Lua 0 is true: the fetch answers 0 or 1.
    local scheme = txn.f:ssl_fc() == 1 and "https" or "http"
    lines[#lines + 1] = "x-original-method: " .. txn.f:method()
    lines[#lines + 1] = "x-original-uri: " .. txn.f:pathq()
    lines[#lines + 1] = "x-forwarded-proto: " .. scheme
    local host = first(client, "host")
    if host ~= nil then
        lines[#lines + 1] = "x-forwarded-host: " .. host
    end
    local length = first(client, "content-length")
    if length ~= nil then
        lines[#lines + 1] = "x-original-content-length: " .. length
    end
    return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

-- authsvc's status and its X-Approov-Did; status nil when it could not be asked or did not
-- answer within the timeout. A plain socket rather than HAProxy's HTTP client: that one waits
-- ~3 s on a refused connection and has no timeout in 2.6.
local function ask_authsvc(request)
    local socket = core.tcp()
    socket:settimeout(TIMEOUT_SECONDS)
    local status, did
    if socket:connect(AUTHSVC_HOST, AUTHSVC_PORT) and socket:send(request) then
        local line = socket:receive("*l")
        status = line and tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
        while status ~= nil do
            line = socket:receive("*l")
            if line == nil then
                status = nil  -- cut before the end of the head
            elseif line == "" or line == "\r" then
                break
            else
                local name, value = line:match("^([^:]+):%s*(.-)%s*$")
                if name ~= nil and name:lower() == "x-approov-did" then
                    did = value
                end
            end
        end
    end
    socket:close()
    return status, did
end

local function refuse(txn, status, body, extra)
    local reply = txn:reply()
    reply:set_status(status)
    reply:add_header("content-type", "application/json")
    reply:add_header("cache-control", "no-store")
    for name, value in pairs(extra or {}) do
        reply:add_header(name, value)
    end
    reply:set_body(body)
    txn:done(reply)
end

local function approov(txn, check_path)
    txn.http:req_del_header("x-approov-did")
    local request = check_request(txn, check_path)
    local started = core.now()
    local status, did = ask_authsvc(request)
    if status == nil and core.now().sec - started.sec < 1 then
        -- Cut at once (a worker killed or restarting): asked once more, as Envoy retries. A
        -- silent authsvc is not asked twice: its timeout is the whole wait.
        status, did = ask_authsvc(request)
    end
    if status ~= nil and status >= 200 and status < 300 then
        if did ~= nil and did ~= "" then
            txn.http:req_set_header("x-approov-did", did)
        end
    elseif status == 401 or status == 403 then
        refuse(txn, 401, '{"error":"unauthorized"}\n')
    else
        refuse(txn, 503, '{"error":"authentication_unavailable"}\n', {["retry-after"] = "5"})
    end
end

core.register_action("approov", {"http-req"}, approov, 1)
