-- wrk script: GET a path with a random id in 1..max.
-- usage: wrk ... -s random-id.lua URL -- '/users/%d' 100000
local fmt, max = "/users/%d", 100000
function init(args)
  if args[1] then fmt = args[1] end
  if args[2] then max = tonumber(args[2]) end
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end
function request()
  return wrk.format("GET", string.format(fmt, math.random(1, max)))
end
