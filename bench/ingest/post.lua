-- bench/ingest/post.lua: wrk script. Each request POSTs ~1 KB samples with
-- ids unique across threads and requests, so that every sample is new (no
-- duplicate short-cut in the store): one sample object by default, or an
-- array of N (`wrk ... -s post.lua URL -- N`). A second argument picks the
-- ids' shape: "counter" (the default here; bench/ingest/run passes uuid7
-- unless told otherwise: thread, counter, time), "uuid4"
-- (random, as UUIDv4-keyed clients send: each lands on its own page of the
-- store's (app, id) index) or "uuid7" (RFC 9562's time-ordered layout: the
-- timestamp first, then a 26-bit counter in rand_a and the top of rand_b as
-- its section 6.2 "method 1" allows, then random bits; wrk's Lua has only a
-- seconds clock, so the timestamp moves once a second and the counter orders
-- the ids within it), or "none" (no id: assay generates one).
local counter = 0
local batch = 1
local id_shape = "counter"
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  if args[1] then batch = tonumber(args[1]) end
  if args[2] then id_shape = args[2] end
  math.randomseed(os.time() * 1000 + (tid or 0))
end

local filler = string.rep("The refund was issued to the original card within five days. ", 14)

local function sample()
  counter = counter + 1
  local id
  local r = math.random
  if id_shape == "uuid4" then
    id = string.format("%08x-%04x-4%03x-%04x-%06x%06x", r(0, 0x7fffffff), r(0, 0xffff), r(0, 0xfff),
        0x8000 + r(0, 0x3fff), r(0, 0xffffff), r(0, 0xffffff))
  elseif id_shape == "uuid7" then
    local ms = os.time() * 1000
    local c = counter % 0x4000000
    id = string.format("%08x-%04x-7%03x-%04x-%06x%06x", math.floor(ms / 65536), ms % 65536,
        math.floor(c / 0x4000), 0x8000 + c % 0x4000, r(0, 0xffffff), r(0, 0xffffff))
  else
    id = string.format("bench-%d-%d-%d", tid or 0, counter, os.time())
  end
  local head = id_shape == "none" and '{"app":"bench",' or '{"app":"bench","id":"' .. id .. '",'
  return head .. '"input":"How do I get a refund for order 1234?",' ..
      '"output":"' .. filler .. '","model_id":"anthropic.claude-3-haiku-20240307-v1:0",' ..
      '"tags":{"team":"support","env":"bench"}}'
end

request = function()
  local body
  if batch == 1 then
    body = sample()
  else
    local parts = {}
    for i = 1, batch do parts[i] = sample() end
    body = "[" .. table.concat(parts, ",") .. "]"
  end
  return wrk.format("POST", "/v1/samples", {["Content-Type"] = "application/json"}, body)
end
