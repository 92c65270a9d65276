-- POST /api/v1/chat as the widget does: 1,000 conversations taking turns, so sessions are read
-- and written under load; prints the same "JSON {...}" line as wrk_predict.lua.
local messages = {"hello", "where is my order?", "it is 12345", "do you ship to Canada?", "thanks, bye"}
local counter = 0

function request()
  counter = counter + 1
  local body = string.format('{"session_id":"load-%d","message":"%s"}',
    counter % 1000, messages[counter % #messages + 1])
  return wrk.format("POST", "/api/v1/chat", {["Content-Type"] = "application/json"}, body)
end

done = dofile(os.getenv("WRK_SUMMARY_LUA"))
