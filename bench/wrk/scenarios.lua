-- Every scenario's requests, chosen by the SCENARIO environment variable.
-- CHATS_FIRST..CHATS_LAST are the prefilled chats; BIG is the chat of 1,000,000
-- messages; DEEP_FIRST..DEEP_LAST are message ids deep inside it.
dofile(os.getenv("REPORT_LUA"))

local scenario = os.getenv("SCENARIO")
local first, last = tonumber(os.getenv("CHATS_FIRST")), tonumber(os.getenv("CHATS_LAST"))
local big = os.getenv("BIG")
local deep_first, deep_last = tonumber(os.getenv("DEEP_FIRST") or "0"), tonumber(os.getenv("DEEP_LAST") or "0")
local json = {["Content-Type"] = "application/json"}

local function get_chat()
  return wrk.format("GET", "/chats/" .. math.random(first, last) .. "?limit=20")
end

local function post_message()
  return wrk.format("POST", "/chats/" .. math.random(first, last) .. "/messages/", json,
    '{"text": "a benchmark message of ordinary length, about sixty bytes"}')
end

local scenarios = {
  create_chat = function() return wrk.format("POST", "/chats/", json, '{"title": "benchmark chat"}') end,
  post_message = post_message,
  get_chat = get_chat,
  get_chat_big = function() return wrk.format("GET", "/chats/" .. big .. "?limit=20") end,
  history = function()
    return wrk.format("GET", "/chats/" .. math.random(first, last) .. "/messages/?limit=50")
  end,
  history_deep = function()
    return wrk.format("GET", "/chats/" .. big .. "/messages/?limit=50&before=" .. math.random(deep_first, deep_last))
  end,
  mixed = function() if math.random(1, 10) <= 8 then return get_chat() end return post_message() end,
  ceiling = function() return wrk.format("GET", "/") end,
}

request = scenarios[scenario]
