-- bench/ingest/post.lua: wrk script. Each request POSTs ~1 KB samples with
-- ids unique across threads and requests, so that every sample is new (no
-- duplicate short-cut in the store): one sample object by default, or an
-- array of N (`wrk ... -s post.lua URL -- N`).
local counter = 0
local batch = 1
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  if args[1] then batch = tonumber(args[1]) end
end

local filler = string.rep("The refund was issued to the original card within five days. ", 14)

local function sample()
  counter = counter + 1
  local id = string.format("bench-%d-%d-%d", tid or 0, counter, os.time())
  return '{"app":"bench","id":"' .. id .. '","input":"How do I get a refund for order 1234?",' ..
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
