-- POST /predict with a different message each time, made of words the bot knows, so that no
-- request repeats an earlier one and no cache can answer it; prints the same "JSON {...}" line as
-- wrk_predict.lua. A message spells out a number unique to its request in words (its digits in
-- base "number of words"), then adds 0 to 4 random words. Arguments: the words file, one word a
-- line, and wrk's thread count.
local words = {}
local counter = 0
local threads = 1
local digits = 1
thread_number = 0  -- a global: setup() sets each thread's own
local created = 0

function setup(thread)
  thread:set("thread_number", created)
  created = created + 1
end

function init(args)
  for line in io.lines(args[1]) do
    words[#words + 1] = line
  end
  threads = tonumber(args[2]) or 1
  while (#words) ^ digits < 1e7 do  -- more numbers than any run sends
    digits = digits + 1
  end
  math.randomseed(os.time() + thread_number)
end

function request()
  local unique = counter * threads + thread_number
  counter = counter + 1
  local parts = {}
  for i = 1, digits do
    parts[i] = words[unique % #words + 1]
    unique = math.floor(unique / #words)
  end
  for i = digits + 1, digits + math.random(0, 4) do
    parts[i] = words[math.random(#words)]
  end
  local body = '{"data":"' .. table.concat(parts, " ") .. '"}'
  return wrk.format("POST", nil, {["Content-Type"] = "text/plain"}, body)
end

done = dofile(os.getenv("WRK_SUMMARY_LUA"))
