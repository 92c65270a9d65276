-- POST /predict with a different message each time, made of words the bot knows, so that no
-- request repeats an earlier one; prints the same "JSON {...}" line as wrk_predict.lua.
local words = {}
local counter = 0

function init(args)
  for line in io.lines(args[1]) do
    words[#words + 1] = line
  end
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8)) or 0))
end

function request()
  counter = counter + 1
  local parts = {}
  for i = 1, math.random(2, 7) do
    parts[i] = words[math.random(#words)]
  end
  local body = '{"data":"' .. table.concat(parts, " ") .. '"}'
  return wrk.format("POST", nil, {["Content-Type"] = "text/plain"}, body)
end

done = dofile(os.getenv("WRK_SUMMARY_LUA"))
