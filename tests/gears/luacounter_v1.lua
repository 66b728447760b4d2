-- Version 1 of a counter (tests/integration/lua.test.mjs): each "inc"
-- answers "v1:<count>".
return {
  name = "luacounter",
  version = "1",
  routes = {{
    pattern = "/ws",
    init = function() return {n = 0} end,
    on_client_message = function(conn, st)
      st.n = st.n + 1
      orrery.send_text(conn, "v1:" .. st.n)
    end,
  }},
}
