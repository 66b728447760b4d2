-- Version 2 of the counter: "v2:<count> upgraded from <old version>" for a
-- connection that started on an older version (its count kept), "v2:<count>
-- new" for one that started on this one.
return {
  name = "luacounter",
  version = "2",
  upgrade = function(st, old_version)
    st.from = "upgraded from " .. tostring(old_version)
    return st
  end,
  routes = {{
    pattern = "/ws",
    init = function() return {n = 0, from = "new"} end,
    on_client_message = function(conn, st)
      st.n = st.n + 1
      orrery.send_text(conn, "v2:" .. st.n .. " " .. st.from)
    end,
  }},
}
