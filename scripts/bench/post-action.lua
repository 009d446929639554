-- wrk script: POST an action of a random user in 1..users on a random
-- product in 1..products.
-- usage: wrk ... -s post-action.lua URL -- 100000 10000
local users, products = 100000, 10000
local kinds = {"view", "view", "view", "cart", "purchase"}
function init(args)
  if args[1] then users = tonumber(args[1]) end
  if args[2] then products = tonumber(args[2]) end
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end
function request()
  local body = string.format('{"product_id": %d, "kind": "%s"}', math.random(1, products), kinds[math.random(1, #kinds)])
  return wrk.format("POST", string.format("/users/%d/actions", math.random(1, users)),
    {["Content-Type"] = "application/json"}, body)
end
