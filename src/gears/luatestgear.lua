--[[
luatestgear: testgear (src/gears/testgear.c) written in Lua, for the tests.
Same handshake (a query parameter `name`; tenant=<id> chooses the pool
tenant:<id>; refuse=1 answers 503 {"error":"refused"}; retry_after=<v> adds
that retry-after to either 503), same routes (/ws, /rooms/:room/*rest), same
text commands and answers:
  echo:<t>  noop  close:<code>:<reason>  crash  info  send:<to>:<text>
  join:<g>  leave:<g>  publish:<g>:<text>  unregister:<n>  register:<n>  pool
plus the ones that test a Lua gear's isolation:
  spin          an endless loop (the time limit stops it)
  hog           allocates without end (the memory limit stops it)
  error         a runtime error deep inside (indexing nil, three calls down)
  error:object  an error whose object is a table
Binary messages are echoed; server messages go to the client as text
(binary when they are not UTF-8): orrery.forward, which the server runs
without entering Lua.
]]

local NAME_MAX = orrery.NAME_MAX

local function json_string(v)
  if v == nil then return "null" end
  return '"' .. v:gsub('[%c"\\]', function(ch)
    if ch == '"' or ch == "\\" then return "\\" .. ch end
    return string.format("\\u%04x", ch:byte())
  end) .. '"'
end

local function build_info(hs)
  local fields = {
    {"method", hs:method()}, {"path", hs:path()}, {"query", hs:query_string()},
    {"name", hs:query("name")}, {"room", hs:param("room")}, {"rest", hs:param("rest")},
    {"ip", hs:client_ip()}, {"cookie", hs:cookie("session")}, {"header", hs:header("x-test")},
    {"context_id", hs:context_id()},
  }
  local out = {}
  for i, f in ipairs(fields) do out[i] = '"' .. f[1] .. '":' .. json_string(f[2]) end
  return "{" .. table.concat(out, ",") .. "}"
end

local function respond_503(hs, body)
  local retry = hs:query("retry_after")
  if retry then hs:add_header("retry-after", retry) end
  hs:respond(503, "application/json", body)
end

-- proto=<p>: <p> if the client offered it; proto_force=<p>: <p> anyway
-- (not offered: the server answers 500).
local function choose_subprotocol(hs)
  local want, i = hs:query("proto"), 1
  while want and hs:subprotocol_at(i) do
    if hs:subprotocol_at(i) == want then hs:select_subprotocol(want) end
    i = i + 1
  end
  local force = hs:query("proto_force")
  if force then hs:select_subprotocol(force) end
end

local function connect(hs)
  choose_subprotocol(hs)
  if hs:query("refuse") then return respond_503(hs, '{"error":"refused"}') end
  local name = hs:query("name")
  if not name or name == "" then
    return hs:respond(400, "text/plain", "query parameter 'name' is required\n")
  end
  if #name >= 128 then return hs:respond(400, "text/plain", "name too long\n") end
end

local function init(conn)
  local hs = orrery.handshake(conn)
  local st = {name = hs:query("name"), info = build_info(hs)}
  local ok, err = orrery.unique_register(conn, st.name)
  if not ok then
    if err == "taken" then orrery.close(conn, 4009, "name taken") else error("register: " .. err) end
  end
  return st
end

local function valid_name(n) return #n > 0 and #n <= NAME_MAX end

-- "<a>:<rest>": a, rest (nil when there is no ':').
local function split(s)
  local i = s:find(":", 1, true)
  if not i then return nil end
  return s:sub(1, i - 1), s:sub(i + 1)
end

local function deep(t, n)
  if n == 0 then return t.missing.field end
  return deep(t, n - 1)
end

local commands = {}

function commands.close(conn, st, arg)
  local code, reason = arg:match("^(%d+):(.*)$")
  if not code then code, reason = arg:match("^(%d+)$"), "" end
  if not code or #code > 6 or tonumber(code) > 65535 then
    return orrery.send_text(conn, "error:bad_close_code")
  end
  if not orrery.close(conn, tonumber(code), reason) then
    orrery.send_text(conn, "error:bad_close_code")
  end
end

function commands.send(conn, st, arg)
  local to, text = split(arg)
  if not to or not valid_name(to) then return orrery.send_text(conn, "error:bad_name") end
  local ok, how = orrery.unique_send(conn, to, st.name .. ":" .. text)
  orrery.send_text(conn, not ok and "sent:false" or how == "parked" and "sent:parked" or "sent:true")
end

function commands.join(conn, st, g)
  if not valid_name(g) then return orrery.send_text(conn, "error:bad_name") end
  local ok = orrery.group_join(conn, g)
  orrery.send_text(conn, (ok and "joined:" or "error:join_failed:") .. g)
end

function commands.leave(conn, st, g)
  if not valid_name(g) then return orrery.send_text(conn, "error:bad_name") end
  local ok = orrery.group_leave(conn, g)
  orrery.send_text(conn, (ok and "left:" or "not_in_group:") .. g)
end

function commands.publish(conn, st, arg)
  local g, text = split(arg)
  if not g or not valid_name(g) then return orrery.send_text(conn, "error:bad_name") end
  local n, err = orrery.group_publish(conn, g, text)
  if not n then error("publish: " .. err) end
  orrery.send_text(conn, "published:" .. n)
end

function commands.register(conn, st, n)
  if not valid_name(n) then return orrery.send_text(conn, "error:bad_name") end
  local ok = orrery.unique_register(conn, n)
  orrery.send_text(conn, (ok and "registered:" or "taken:") .. n)
end

function commands.unregister(conn, st, n)
  if not valid_name(n) then return orrery.send_text(conn, "error:bad_name") end
  local ok = orrery.unique_unregister(conn, n)
  orrery.send_text(conn, (ok and "unregistered:" or "not_registered:") .. n)
end

function commands.error(conn, st, arg)
  if arg == "object" then error({code = 7}) end
  deep({}, 3)
end

local simple = {
  noop = function() end,
  crash = function() error("crash") end,
  info = function(conn, st) orrery.send_text(conn, st.info) end,
  pool = function(conn) orrery.send_text(conn, orrery.pool(conn)) end,
  spin = function() while true do end end,
  hog = function()
    local t = {}
    for i = 1, math.huge do t[i] = string.rep("x", 1024) .. i end
  end,
  error = function() deep({}, 3) end,
}

-- Returns nothing: the state stays the table init made (a callback's
-- result, when not nil, would replace it).
local function on_client_message(conn, st, data, kind)
  if kind == "binary" then orrery.send_binary(conn, data) return end
  local echo = data:match("^echo:(.*)$")
  if echo then orrery.send_text(conn, echo) return end
  local f = simple[data]
  if f then f(conn, st) return end
  local cmd, arg = split(data)
  f = cmd and commands[cmd]
  if f then f(conn, st, arg) return end
  orrery.send_text(conn, "error:unknown_command")
end

return {
  name = "luatestgear",
  version = "1",
  routes = {
    {pattern = "/ws", connect = connect, init = init, on_client_message = on_client_message,
     on_server_message = orrery.forward},
    {pattern = "/rooms/:room/*rest", connect = connect, init = init,
     on_client_message = on_client_message, on_server_message = orrery.forward},
  },
  executor_pool_for_web_request = function(hs)
    local tenant = hs:query("tenant")
    return tenant and ("tenant:" .. tenant) or "gear:luatestgear"
  end,
  ws_too_many_connections = function(hs)
    respond_503(hs, '{"error":"ws_too_many_connections"}')
  end,
}
