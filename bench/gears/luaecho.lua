-- echo in Lua, for bench/run.sh's lua load (BENCH_LOADS=lua): every
-- message back with its opcode, as src/gears/echo.c does.
return {
  name = "luaecho",
  routes = {{
    pattern = "/ws",
    on_client_message = function(conn, state, data, kind)
      if kind == "text" then
        orrery.send_text(conn, data)
      else
        orrery.send_binary(conn, data)
      end
    end,
  }},
}
