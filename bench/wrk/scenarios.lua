-- Every scenario's requests, chosen by the SCENARIO environment variable.
-- CHATS_FIRST..CHATS_LAST are the prefilled chats; BIG is the chat of 1,000,000
-- messages; DEEP_FIRST..DEEP_LAST are message ids deep inside it.
dofile(os.getenv("REPORT_LUA"))

local scenario = os.getenv("SCENARIO")
local first, last = tonumber(os.getenv("CHATS_FIRST")), tonumber(os.getenv("CHATS_LAST"))
local big = os.getenv("BIG")
local deep_first, deep_last = tonumber(os.getenv("DEEP_FIRST") or "0"), tonumber(os.getenv("DEEP_LAST") or "0")
-- TOKENS: the bench users' tokens, comma-separated; each request is one user's.
local tokens = {}
for token in string.gmatch(os.getenv("TOKENS") or "", "[^,]+") do tokens[#tokens + 1] = token end

local function as_user(headers)
  local with = {}
  for name, value in pairs(headers or {}) do with[name] = value end
  if #tokens > 0 then with["Authorization"] = "Bearer " .. tokens[math.random(1, #tokens)] end
  return with
end

local function get(path) return wrk.format("GET", path, as_user()) end
local function post(path, body)
  return wrk.format("POST", path, as_user({["Content-Type"] = "application/json"}), body)
end

local function get_chat()
  return get("/chats/" .. math.random(first, last) .. "?limit=20")
end

local function post_message()
  return post("/chats/" .. math.random(first, last) .. "/messages/",
    '{"text": "a benchmark message of ordinary length, about sixty bytes"}')
end

local scenarios = {
  create_chat = function() return post("/chats/", '{"title": "benchmark chat"}') end,
  post_message = post_message,
  get_chat = get_chat,
  get_chat_big = function() return get("/chats/" .. big .. "?limit=20") end,
  history = function()
    return get("/chats/" .. math.random(first, last) .. "/messages/?limit=50")
  end,
  history_deep = function()
    return get("/chats/" .. big .. "/messages/?limit=50&before=" .. math.random(deep_first, deep_last))
  end,
  mixed = function() if math.random(1, 10) <= 8 then return get_chat() end return post_message() end,
  ceiling = function() return wrk.format("GET", "/") end,
}

request = scenarios[scenario]
