--[[
luaprobe: a Lua gear for tests/integration/lua.test.mjs, at /luaprobe/ws.
Its state is a number (a counter), so a callback's result is its new state.
Text commands:
  inc               count + 1, answers "<count>"
  fail              sets the count to -1, then raises an error: terminate
                    logs the count from before
  yield             coroutine.yield() from the callback itself (not ours)
  nested            a registry call inside a coroutine of its own
  sort              a registry call inside table.sort's comparator
  spin:pcall        an endless loop inside pcall (the limit is not caught)
  hog:pcall         allocation without end inside pcall
  escape:<expr>     evaluates <expr>; answers "error:<message>" or "ok:<value>"
  handshake         orrery.handshake(conn) outside init: "nil"
terminate logs "probe terminate kind=<kind> count=<count>".
]]

local function eval(expr)
  local f, err = load("return " .. expr, "=escape")
  if not f then return "error:" .. err end
  local ok, v = pcall(f)
  if not ok then return "error:" .. tostring(v) end
  return "ok:" .. tostring(v)
end

local function on_client_message(conn, count, data)
  if data == "inc" then
    count = count + 1
    orrery.send_text(conn, tostring(count))
    return count
  elseif data == "fail" then
    return error("failing after a change") or -1
  elseif data == "yield" then
    coroutine.yield()
  elseif data == "nested" then
    local co = coroutine.wrap(function() return orrery.group_join(conn, "g") end)
    co()
  elseif data == "sort" then
    table.sort({3, 2, 1}, function(a, b) orrery.group_join(conn, "g") return a < b end)
  elseif data == "spin:pcall" then
    while true do pcall(function() while true do end end) end
  elseif data == "hog:pcall" then
    local keep = {}
    while true do
      pcall(function() local t = {} for i = 1, math.huge do t[i] = {i} end end)
      keep[#keep + 1] = "x"
    end
  elseif data:sub(1, 7) == "escape:" then
    orrery.send_text(conn, eval(data:sub(8)))
  elseif data == "handshake" then
    orrery.send_text(conn, tostring(orrery.handshake(conn)))
  end
end

return {
  name = "luaprobe",
  version = 1,
  routes = {{
    pattern = "/ws",
    init = function(conn)
      orrery.send_text(conn, orrery.handshake(conn) and "hello" or "no handshake")
      return 0
    end,
    on_client_message = on_client_message,
    terminate = function(conn, count, reason)
      orrery.log(conn, "info", "probe terminate kind=" .. reason.kind .. " count=" .. tostring(count))
    end,
  }},
}
