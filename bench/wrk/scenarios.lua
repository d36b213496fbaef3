-- Every scenario's requests, chosen by the SCENARIO environment variable.
-- CHATS_FIRST..CHATS_LAST are the prefilled chats; BIG is the chat of 1,000,000
-- messages; DEEP_FIRST..DEEP_LAST are message ids deep inside it.
-- EDIT_TARGETS and DELETE_TARGETS: blocks of messages, "chat:first_id:count:user,...",
-- each block's messages ids first_id .. first_id + count - 1 in one chat, all
-- written by bench user number user (0-based: tokens[user + 1] is theirs).
dofile(os.getenv("REPORT_LUA"))

local scenario = os.getenv("SCENARIO")
local first, last = tonumber(os.getenv("CHATS_FIRST")), tonumber(os.getenv("CHATS_LAST"))
local big = os.getenv("BIG")
local deep_first, deep_last = tonumber(os.getenv("DEEP_FIRST") or "0"), tonumber(os.getenv("DEEP_LAST") or "0")
-- TOKENS: the bench users' tokens, comma-separated; each request is one user's.
local tokens = {}
for token in string.gmatch(os.getenv("TOKENS") or "", "[^,]+") do tokens[#tokens + 1] = token end

local function blocks(text)
  local found = {}
  for chat, first_id, count, user in string.gmatch(text or "", "(%d+):(%d+):(%d+):(%d+)") do
    found[#found + 1] = {chat = chat, first = tonumber(first_id), count = tonumber(count),
      token = tokens[tonumber(user) + 1]}
  end
  return found
end
local edit_blocks, delete_blocks = blocks(os.getenv("EDIT_TARGETS")), blocks(os.getenv("DELETE_TARGETS"))

local function as_user(headers, token)
  local with = {}
  for name, value in pairs(headers or {}) do with[name] = value end
  token = token or (#tokens > 0 and tokens[math.random(1, #tokens)])
  if token then with["Authorization"] = "Bearer " .. token end
  return with
end

local function get(path) return wrk.format("GET", path, as_user()) end
local function post(path, body)
  return wrk.format("POST", path, as_user({["Content-Type"] = "application/json"}), body)
end

-- MESSAGES_FIRST: the first prefilled chat's first message id; chat CHATS_FIRST + k
-- holds ids MESSAGES_FIRST + k * MESSAGES .. + MESSAGES - 1 (bench/run.py checks it).
local messages_first, per_chat = tonumber(os.getenv("MESSAGES_FIRST") or "0"), tonumber(os.getenv("MESSAGES") or "0")
local function chat_and_message()
  local chat = math.random(first, last)
  return chat, messages_first + (chat - first) * per_chat + math.random(0, per_chat - 1)
end

local function get_chat()
  return get("/chats/" .. math.random(first, last) .. "?limit=20")
end

local function post_message()
  return post("/chats/" .. math.random(first, last) .. "/messages/",
    '{"text": "a benchmark message of ordinary length, about sixty bytes"}')
end

-- The same with a fresh Idempotency-Key each (KEY_PREFIX tells apart the wrk
-- processes sharing the chats): each such send is a transaction of its own.
local key_prefix = os.getenv("KEY_PREFIX") or ""
local keyed_sends = 0
local function post_message_keyed()
  keyed_sends = keyed_sends + 1
  return wrk.format("POST", "/chats/" .. math.random(first, last) .. "/messages/",
    as_user({["Content-Type"] = "application/json",
      ["Idempotency-Key"] = key_prefix .. "-" .. (thread_index or 0) .. "-" .. keyed_sends}),
    '{"text": "a benchmark message of ordinary length, about sixty bytes"}')
end

-- A random message of a random block, edited by its author: messages can be edited again and again.
local function edit_message()
  local block = edit_blocks[math.random(1, #edit_blocks)]
  return wrk.format("PATCH", "/chats/" .. block.chat .. "/messages/" .. (block.first + math.random(0, block.count - 1)),
    as_user({["Content-Type"] = "application/json"}, block.token),
    '{"text": "an edited benchmark message of ordinary length, sixty bytes"}')
end

-- Each message deleted once, by its author. Thread t of THREADS takes the t-th,
-- (t + THREADS)-th, ... deletion; deletion g is in block g mod #blocks (the chats
-- take turns, so concurrent deletes rarely wait on one chat's lock), the k-th of
-- its block (k = floor(g / #blocks)) at offset k * 7919 mod count: scattered through
-- the chat, newest message or not, every offset once (count is prime to 7919).
-- Past the blocks' supply it asks for message 0, a 404 that counts as an error.
local threads = tonumber(os.getenv("THREADS") or "1")
local deletions = 0
local function delete_message()
  local g = (thread_index or 0) + deletions * threads
  deletions = deletions + 1
  local block = delete_blocks[g % #delete_blocks + 1]
  local k = math.floor(g / #delete_blocks)
  local id = 0
  if k < block.count then id = block.first + (k * 7919) % block.count end
  return wrk.format("DELETE", "/chats/" .. block.chat .. "/messages/" .. id, as_user(nil, block.token))
end

local scenarios = {
  create_chat = function() return post("/chats/", '{"title": "benchmark chat"}') end,
  post_message = post_message,
  post_message_keyed = post_message_keyed,
  get_chat = get_chat,
  get_chat_big = function() return get("/chats/" .. big .. "?limit=20") end,
  history = function()
    return get("/chats/" .. math.random(first, last) .. "/messages/?limit=50")
  end,
  history_deep = function()
    return get("/chats/" .. big .. "/messages/?limit=50&before=" .. math.random(deep_first, deep_last))
  end,
  -- A page going forward from a random message of the chat (a full page, or the chat's newest).
  history_after = function()
    local chat, id = chat_and_message()
    return get("/chats/" .. chat .. "/messages/?limit=50&after=" .. id)
  end,
  get_message = function()
    local chat, id = chat_and_message()
    return get("/chats/" .. chat .. "/messages/" .. id)
  end,
  members = function() return get("/chats/" .. math.random(first, last) .. "/members?limit=50") end,
  mixed = function() if math.random(1, 10) <= 8 then return get_chat() end return post_message() end,
  -- The listings run with TOKENS holding one user's token: theirs is the listing.
  list_chats = function() return get("/chats/?limit=20") end,
  list_chats_by_activity = function() return get("/chats/?order=activity&limit=20") end,
  -- SEARCH_Q: the words searched for (letters and digits only: no escaping needed).
  search = function() return get("/search/messages?limit=20&q=" .. os.getenv("SEARCH_Q")) end,
  edit_message = edit_message,
  delete_message = delete_message,
  ceiling = function() return wrk.format("GET", "/") end,
}

-- Numbers wrk's threads (0, 1, ...), for the scenarios that split their work between them.
local started = 0
function setup(thread)
  thread:set("thread_index", started)
  started = started + 1
end

-- Each thread its own random sequence. Unseeded, every thread's LuaJIT state starts
-- from the same one: the threads sent the same requests in step, and reads that
-- queued together shared answers they would not share with real clients.
function init(args)
  math.randomseed(1 + (thread_index or 0))
end

request = scenarios[scenario]
