-- bench/ingest/post.lua: wrk script. Each request POSTs one ~1 KB sample
-- with an id unique across threads and requests, so that every request is a
-- new sample (no duplicate short-cut in the store).
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local filler = string.rep("The refund was issued to the original card within five days. ", 14)

request = function()
  counter = counter + 1
  local id = string.format("bench-%d-%d-%d", tid or 0, counter, os.time())
  local body = '{"app":"bench","id":"' .. id .. '","input":"How do I get a refund for order 1234?",' ..
      '"output":"' .. filler .. '","model_id":"anthropic.claude-3-haiku-20240307-v1:0",' ..
      '"tags":{"team":"support","env":"bench"}}'
  return wrk.format("POST", "/v1/samples", {["Content-Type"] = "application/json"}, body)
end
