-- Wireshark dissector for locksync: the smart-lock Door Sync service over BLE GATT.
--
-- Hooks into Wireshark's ATT dissector through the "bluetooth.uuid" table, so it runs on
-- the values of locksync's characteristics wherever Wireshark saw the GATT discovery
-- (every connection of the demo's and the radio's captures does):
--   RX   4c4b0002-5359-4e43-8000-6c6f636b7379  phone -> lock, framing frames (writes)
--   TX   4c4b0003-5359-4e43-8000-6c6f636b7379  lock -> phone, framing frames (notifications)
--   INFO 4c4b0004-5359-4e43-8000-6c6f636b7379  read-only CBOR lockInfo
-- and decodes the framing headers (protocol/SPEC.md §13.2: START/DATA/ACK/HELLO/ABORT,
-- sequence, message id, total, offset, window), reassembles each direction's messages
-- (across frames and resumed connections) and shows the CBOR session messages (§6) with
-- the field names of the SPEC registry (§12).
--
-- Use:  wireshark -X lua_script:tools/wireshark/locksync.lua capture.btsnoop
--       tshark    -X lua_script:tools/wireshark/locksync.lua -r capture.btsnoop -Y locksync
-- or copy the file into Wireshark's personal plugins folder (Help → About → Folders).
-- Display filters: locksync, locksync.frame.type == 0x80, locksync.message.type_name == "receipt",
-- locksync.field contains "lockId".  Written for Wireshark ≥ 3.6 (Lua 5.2+, no bit operators).

local locksync = Proto("locksync", "locksync Door Sync")

local UUIDS = {
  ["4c4b0001-5359-4e43-8000-6c6f636b7379"] = "locksync service",
  ["4c4b0002-5359-4e43-8000-6c6f636b7379"] = "locksync RX",
  ["4c4b0003-5359-4e43-8000-6c6f636b7379"] = "locksync TX",
  ["4c4b0004-5359-4e43-8000-6c6f636b7379"] = "locksync INFO",
}

local FRAME_TYPES = { [0x80] = "START", [0x81] = "ACK", [0x82] = "HELLO", [0x83] = "ABORT" }

-- §13.2 Errors (ABORT reasons).
local FRAMING_ERRORS = {
  [1] = "FRAME_TOO_SHORT", [2] = "FRAME_TOO_LONG", [3] = "UNKNOWN_FRAME_TYPE", [4] = "MALFORMED_FRAME",
  [5] = "BAD_SEQUENCE", [6] = "UNEXPECTED_CONTINUATION", [7] = "UNEXPECTED_START", [8] = "MESSAGE_TOO_LARGE",
  [9] = "LENGTH_OVERRUN", [10] = "WINDOW_VIOLATION", [11] = "RESUME_MISMATCH", [12] = "UNSUPPORTED_VERSION",
  [13] = "UNEXPECTED_FRAME", [14] = "PEER_ABORTED", [15] = "SENDER_BUSY", [16] = "BAD_ARGUMENT",
}

-- §12.5 Message types.
local MESSAGE_TYPES = {
  [1] = "hello", [3] = "delta", [4] = "snapshot", [5] = "receipt", [6] = "signedTime", [7] = "unlockRequest",
  [8] = "challenge", [9] = "unlockResponse", [10] = "decision", [11] = "auditRequest", [12] = "auditExport",
  [13] = "error", [14] = "timeAck", [15] = "receiptRequest", [16] = "floorReset",
  [17] = "auditAnchor", [18] = "auditAnchored", [19] = "batch", [20] = "batchReply",
}

-- §12.1 Error codes, §12.2 decision reasons, §12.3 audit events, §12.4 capabilities, §12.6 ops.
local ERROR_CODES = {
  [1] = "MALFORMED", [2] = "BAD_SIGNATURE", [3] = "UNTRUSTED_KEY", [4] = "WRONG_LOCK", [5] = "ROLLBACK",
  [6] = "BROKEN_CHAIN", [7] = "DIGEST_MISMATCH", [8] = "OVER_LIMIT", [9] = "UNSUPPORTED_VERSION",
  [10] = "UNEXPECTED_MESSAGE", [11] = "SESSION_EXPIRED", [12] = "BAD_NONCE", [13] = "BUSY", [14] = "INTERNAL",
  [15] = "TIME_ROLLBACK", [16] = "INVALID_OP", [17] = "NOT_ATTEMPTED",
}
local DECISION_REASONS = {
  [0] = "GRANTED", [1] = "UNKNOWN_CREDENTIAL", [2] = "OUT_OF_SCHEDULE", [3] = "NOT_YET_VALID", [4] = "EXPIRED",
  [5] = "LOCKED_OUT", [6] = "LEASE_STALE", [7] = "BAD_RESPONSE", [8] = "CHALLENGE_EXPIRED", [9] = "REPLAYED",
  [10] = "DOORCODES_DISABLED", [11] = "PARENT_MISSING", [12] = "WRONG_CODE", [13] = "LOW_BATTERY",
  [14] = "WRONG_LOCK", [15] = "CODE_USED_UP", [16] = "KEYPAD_TIMEOUT", [17] = "CLOCK_UNTRUSTED",
}
local AUDIT_EVENTS = {
  [1] = "access", [2] = "updateApplied", [3] = "updateRefused", [4] = "timeSet", [5] = "boot",
  [6] = "powerLossRecovered", [7] = "lockoutStarted", [8] = "lowBattery", [9] = "relocked", [10] = "provisioned",
  [11] = "floorReset", [12] = "recordsLost", [13] = "refusalsNotLogged", [14] = "flashDataLost",
}
local CAPABILITIES = { "delta", "snapshot", "unlock", "auditExport", "resume", "keypad", "keycard", "batch" }
local OPS = { [1] = "put", [2] = "remove", [3] = "removePartner", [4] = "removeKey", [5] = "setKeyPolicy", [6] = "setLockPolicy" }
local KINDS = { [0] = "phone", [1] = "doorcode", [2] = "keycard" }
local HOLDERS = { [0] = "resident", [1] = "staff", [2] = "guest", [3] = "partner" }

-- Schemas: integer map keys → { name, how to show / what is inside }.
--   time = unix seconds, names = enum table, cbor = byte string holding CBOR of schema `of`,
--   each = array whose items follow schema `of`, bits = capability mask.
local S = {}
S.head = { [1] = { "lockId" }, [2] = { "version" }, [3] = { "digest" }, [4] = { "issuedAt", time = true }, [5] = { "keyId" } }
S.signedHead = { array = { { "head", cbor = "head" }, { "signature" } } }
S.window = {}
S.entry = {
  [1] = { "credId" }, [2] = { "type", credtype = true }, [3] = { "secret" }, [4] = { "partnerId" }, [5] = { "keyId" },
  [6] = { "parent" }, [7] = { "schedule" }, [8] = { "validity" }, [9] = { "flags" },
}
S.keyPolicy = { [1] = { "keyId" }, [2] = { "doorcodesEnabled" }, [3] = { "schedule" } }
S.lockPolicy = { [1] = { "wrongCodeLimit" }, [2] = { "lockoutSeconds" }, [3] = { "leaseSeconds" }, [4] = { "relockSeconds" }, [5] = { "dailyCodeSlots" } }
S.table = { [1] = { "entries", each = "entry" }, [2] = { "keyPolicies", each = "keyPolicy" }, [3] = { "lockPolicy", of = "lockPolicy" } }
S.op = { op = true }
S.keyCert = {}
S.delta = { [1] = { "baseVersion" }, [2] = { "baseDigestPrefix" }, [3] = { "ops", each = "op" }, [4] = { "head", of = "signedHead" }, [5] = { "certs" } }
S.snapshot = { [1] = { "table", of = "table" }, [4] = { "head", of = "signedHead" }, [5] = { "certs" } }
S.receiptBody = { [1] = { "lockId" }, [2] = { "version" }, [3] = { "digest" }, [4] = { "nonce" }, [5] = { "lockTime", time = true }, [6] = { "auditSeq" }, [7] = { "auditHead" } }
S.signedTimeBody = { [1] = { "lockId" }, [2] = { "time", time = true }, [3] = { "keyId" }, [4] = { "nonce" }, [5] = { "version" }, [6] = { "digest" } }
S.floorResetBody = { [1] = { "lockId" }, [2] = { "time", time = true }, [3] = { "versionFloor" }, [4] = { "keyId" }, [5] = { "nonce" } }
S.challengeBody = { [1] = { "lockId" }, [2] = { "sessionId" }, [3] = { "nonce" }, [4] = { "credId" }, [5] = { "expiresAtMs", timems = true } }
S.auditRecord = { [1] = { "seq" }, [2] = { "time", time = true }, [3] = { "event", names = AUDIT_EVENTS }, [4] = { "credId" }, [5] = { "reason" }, [6] = { "value" }, [7] = { "count" } }
S.auditHeadBody = { [1] = { "lockId" }, [2] = { "seq" }, [3] = { "hash" }, [4] = { "oldestSeq" } }
S.auditAnchorBody = { [1] = { "lockId" }, [2] = { "seq" }, [3] = { "hash" }, [4] = { "keyId" } }
S.lockInfo = { [1] = { "lockId" }, [2] = { "protocolVersion" }, [3] = { "capabilities", bits = true }, [4] = { "version" } }
S.message = {
  [1] = { -- hello
    [1] = { "protocolVersion" }, [2] = { "lockId" }, [3] = { "version" }, [4] = { "digest" }, [5] = { "nonce" },
    [6] = { "lockTime", time = true }, [7] = { "capabilities", bits = true }, [8] = { "auditSeq" }, [9] = { "battery" }, [10] = { "certSerial" },
  },
  [3] = { [1] = { "delta", of = "delta" } },
  [4] = { [1] = { "snapshot", of = "snapshot" } },
  [5] = { [1] = { "body", cbor = "receiptBody" }, [2] = { "signature" } },
  [6] = { [1] = { "body", cbor = "signedTimeBody" }, [2] = { "signature" } },
  [7] = { [1] = { "credId" } },
  [8] = { [1] = { "body", cbor = "challengeBody" } },
  [9] = { [1] = { "challenge", cbor = "challengeBody" }, [2] = { "signature" } },
  [10] = { [1] = { "granted" }, [2] = { "reason", names = DECISION_REASONS }, [3] = { "auditSeq" } },
  [11] = { [1] = { "fromSeq" } },
  [12] = { [1] = { "prevHash" }, [2] = { "records", eachcbor = "auditRecord" }, [3] = { "head", cbor = "auditHeadBody" }, [4] = { "signature" } },
  [13] = { [1] = { "code", names = ERROR_CODES }, [2] = { "detail" } },
  [14] = { [1] = { "lockTime", time = true } },
  [15] = {},
  [16] = { [1] = { "body", cbor = "floorResetBody" }, [2] = { "signature" } },
  [17] = { [1] = { "body", cbor = "auditAnchorBody" }, [2] = { "signature" } },
  [18] = { [1] = { "anchoredSeq" } },
  [19] = { [1] = { "messages", eachmessage = true } },
  [20] = { [1] = { "replies", eachmessage = true } },
}

local f = {
  characteristic = ProtoField.string("locksync.characteristic", "Characteristic"),
  frame_type = ProtoField.uint8("locksync.frame.type", "Frame type", base.HEX),
  frame_type_name = ProtoField.string("locksync.frame.type_name", "Frame"),
  seq = ProtoField.uint8("locksync.frame.seq", "Sequence number"),
  message_id = ProtoField.uint16("locksync.frame.message_id", "Message id", base.HEX),
  total = ProtoField.uint32("locksync.frame.total", "Message total length"),
  offset = ProtoField.uint32("locksync.frame.offset", "Offset of first payload byte"),
  payload = ProtoField.bytes("locksync.frame.payload", "Payload"),
  version = ProtoField.uint8("locksync.hello.version", "Framing version"),
  window = ProtoField.uint8("locksync.hello.window", "Receive window (frames)"),
  flags = ProtoField.uint8("locksync.hello.flags", "Flags", base.HEX),
  max_message = ProtoField.uint32("locksync.hello.max_message", "Largest message accepted"),
  partial_id = ProtoField.uint16("locksync.hello.partial.message_id", "Partial message id", base.HEX),
  partial_total = ProtoField.uint32("locksync.hello.partial.total", "Partial message total"),
  partial_held = ProtoField.uint32("locksync.hello.partial.held", "Bytes held"),
  completed_id = ProtoField.uint16("locksync.hello.completed.message_id", "Completed message id", base.HEX),
  completed_total = ProtoField.uint32("locksync.hello.completed.total", "Completed message total"),
  abort_id = ProtoField.uint16("locksync.abort.message_id", "Aborted message id", base.HEX),
  abort_reason = ProtoField.uint8("locksync.abort.reason", "Reason", base.DEC, FRAMING_ERRORS),
  message_type = ProtoField.uint8("locksync.message.type", "Message type", base.DEC, MESSAGE_TYPES),
  message_type_name = ProtoField.string("locksync.message.type_name", "Message"),
  message_length = ProtoField.uint32("locksync.message.length", "Message length"),
  message_direction = ProtoField.string("locksync.message.direction", "Direction"),
  message_frames = ProtoField.uint32("locksync.message.frames", "Frames"),
  message_id = ProtoField.uint16("locksync.message.id", "Message id", base.HEX),
  field = ProtoField.string("locksync.field", "Field"),
}
locksync.fields = f

local e_malformed = ProtoExpert.new("locksync.malformed", "Malformed locksync data", expert.group.MALFORMED, expert.severity.ERROR)
local e_partial = ProtoExpert.new("locksync.partial", "Message not in this capture from its start", expert.group.REASSEMBLE, expert.severity.NOTE)
locksync.experts = { e_malformed, e_partial }

local att_opcode = Field.new("btatt.opcode")

-- ---------------------------------------------------------------------------------------
-- CBOR (SPEC §2: deterministic; definite lengths only)

local function read_uint(tvb, off, n)
  if n <= 4 then return tvb(off, n):uint() end
  return tvb(off, n):uint64() -- UInt64 object; tostring() shows it
end

-- Decodes one item at `off`; returns item, next offset. Items: { major, value, off, len,
-- items (array), pairs (map: {k, v}) }. Errors raise a Lua error (caught by the caller).
local function cbor(tvb, off, depth)
  if depth > 16 then error("CBOR nested too deep") end
  if off >= tvb:len() then error("CBOR item cut short") end
  local ib = tvb(off, 1):uint()
  local major = math.floor(ib / 32)
  local ai = ib % 32
  local arg, p = ai, off + 1
  if ai == 24 then arg = tvb(p, 1):uint(); p = p + 1
  elseif ai == 25 then arg = tvb(p, 2):uint(); p = p + 2
  elseif ai == 26 then arg = tvb(p, 4):uint(); p = p + 4
  elseif ai == 27 then arg = read_uint(tvb, p, 8); p = p + 8
  elseif ai > 27 then error(string.format("CBOR additional info %d not allowed", ai)) end
  local item = { major = major, off = off }
  if major == 0 then item.value = arg
  elseif major == 1 then item.value = type(arg) == "number" and (-1 - arg) or ("-1-" .. tostring(arg))
  elseif major == 2 or major == 3 then
    if type(arg) ~= "number" or p + arg > tvb:len() then error("CBOR string runs past the message") end
    item.bytes = tvb(p, arg)
    item.value = (major == 3) and tvb(p, arg):string(ENC_UTF_8) or tostring(tvb(p, arg):bytes())
    p = p + arg
  elseif major == 4 then
    item.items = {}
    for i = 1, arg do item.items[i], p = cbor(tvb, p, depth + 1) end
  elseif major == 5 then
    item.pairs = {}
    for i = 1, arg do
      local k, v
      k, p = cbor(tvb, p, depth + 1)
      v, p = cbor(tvb, p, depth + 1)
      item.pairs[i] = { k = k, v = v }
    end
  elseif major == 7 then
    if ai == 20 then item.value = false elseif ai == 21 then item.value = true elseif ai == 22 then item.value = "null"
    else error(string.format("CBOR simple/float 0x%02x not used by locksync", ib)) end
  else error("CBOR tags are not used by locksync") end
  item.len = p - off
  return item, p
end

local function lookup(map, key)
  for _, kv in ipairs(map.pairs or {}) do
    if kv.k.major == 0 and kv.k.value == key then return kv.v end
  end
  return nil
end

local function short_hex(s)
  if #s > 32 then return s:sub(1, 32) .. "…" end
  return s
end

local function scalar_text(item, spec)
  local v = item.value
  if item.items then return string.format("[%d items]", #item.items) end
  if item.pairs then return string.format("{%d keys}", #item.pairs) end
  if spec and spec.names and type(v) == "number" then return string.format("%s (%d)", spec.names[v] or "unknown", v) end
  if spec and spec.time and type(v) == "number" then return string.format("%d (%s)", v, os.date("!%Y-%m-%dT%H:%M:%SZ", v)) end
  if spec and spec.timems and type(v) == "number" then return string.format("%d (%s)", v, os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(v / 1000))) end
  if spec and spec.bits and type(v) == "number" then
    local on, n = {}, v
    for i, name in ipairs(CAPABILITIES) do
      if math.floor(n / 2 ^ (i - 1)) % 2 == 1 then on[#on + 1] = name end
    end
    return string.format("0x%04x (%s)", v, table.concat(on, ", "))
  end
  if spec and spec.credtype and type(v) == "number" then
    return string.format("%d (%s/%s)", v, KINDS[math.floor(v / 4)] or "?", HOLDERS[v % 4] or "?")
  end
  if item.major == 3 then return '"' .. v .. '"' end
  if item.major == 2 then return short_hex(v:lower()) .. string.format(" (%d bytes)", item.bytes:len()) end
  return tostring(v)
end

-- Adds `item` under `tree` as `name`, following `schema` (a map schema by name) for children.
local add_item

local function add_map(tree, tvb, item, schemaName)
  local schema = S[schemaName] or {}
  for _, kv in ipairs(item.pairs or {}) do
    local key = kv.k.value
    local spec = (type(key) == "number") and schema[key] or nil
    local name = spec and spec[1] or ("key " .. tostring(key))
    add_item(tree, tvb, kv.v, name, key, spec)
  end
end

add_item = function(tree, tvb, item, name, key, spec)
  local label = (key ~= nil) and string.format("%s (%s): %s", name, tostring(key), scalar_text(item, spec)) or string.format("%s: %s", name, scalar_text(item, spec))
  local node = tree:add(f.field, tvb(item.off, item.len), name .. " = " .. scalar_text(item, spec))
  node:set_text(label)
  if not spec then
    if item.pairs then add_map(node, tvb, item, "") end
    return
  end
  if spec.cbor and item.bytes then
    local ok, inner = pcall(cbor, item.bytes:tvb(), 0, 0)
    if ok then
      local sub = item.bytes:tvb()
      node:append_text(string.format(" — CBOR %s", spec.cbor))
      add_map(node, sub, inner, spec.cbor)
    else
      node:add_proto_expert_info(e_malformed, "embedded CBOR: " .. tostring(inner))
    end
  elseif spec.of and item.pairs then
    add_map(node, tvb, item, spec.of)
  elseif spec.of and item.items and S[spec.of] and S[spec.of].array then
    for i, sub in ipairs(item.items) do
      local s = S[spec.of].array[i]
      add_item(node, tvb, sub, s and s[1] or ("[" .. i .. "]"), nil, s)
    end
  elseif spec.each and item.items then
    for i, sub in ipairs(item.items) do
      if spec.each == "op" and sub.items and sub.items[1] then
        local code = sub.items[1].value
        local n = node:add(f.field, tvb(sub.off, sub.len), "op = " .. (OPS[code] or tostring(code)))
        n:set_text(string.format("[%d] op %s (%s)", i - 1, OPS[code] or "unknown", tostring(code)))
        local arg = sub.items[2]
        if arg then
          local argSchema = ({ [1] = "entry", [5] = "keyPolicy", [6] = "lockPolicy" })[code]
          local argName = ({ [1] = "entry", [2] = "credId", [3] = "partnerId", [4] = "keyId", [5] = "keyPolicy", [6] = "lockPolicy" })[code] or "argument"
          add_item(n, tvb, arg, argName, nil, argSchema and { argName, of = argSchema } or nil)
        end
      else
        add_item(node, tvb, sub, string.format("[%d]", i - 1), nil, { spec.each, of = spec.each })
      end
    end
  elseif spec.eachmessage and item.items then
    -- §6.5: each item is one whole encoded message, shown by its own type's schema.
    for i, sub in ipairs(item.items) do
      local ok, inner = false, nil
      if sub.bytes then ok, inner = pcall(cbor, sub.bytes:tvb(), 0, 0) end
      local typeItem = ok and inner.pairs and lookup(inner, 0)
      local code = typeItem and typeItem.value
      local tname = (type(code) == "number" and MESSAGE_TYPES[code]) or "unknown"
      local n = node:add(f.field, tvb(sub.off, sub.len), string.format("[%d] = %s", i - 1, tname))
      n:set_text(string.format("[%d] %s (%d)", i - 1, tname, type(code) == "number" and code or -1))
      if ok and type(code) == "number" and S.message[code] then
        local itvb = sub.bytes:tvb()
        for _, kv in ipairs(inner.pairs) do
          local key = kv.k.value
          if key ~= 0 then
            local ispec = S.message[code][key]
            add_item(n, itvb, kv.v, ispec and ispec[1] or ("key " .. tostring(key)), key, ispec)
          end
        end
      else
        n:add_proto_expert_info(e_malformed, "batch item is not a locksync message")
      end
    end
  elseif spec.eachcbor and item.items then
    for i, sub in ipairs(item.items) do
      add_item(node, tvb, sub, string.format("[%d]", i - 1), nil, { spec.eachcbor, cbor = spec.eachcbor })
    end
  end
end

-- ---------------------------------------------------------------------------------------
-- Framing (§13.2) and reassembly

local function varint(tvb, off)
  local value, mult = 0, 1
  for i = 0, 4 do
    if off + i >= tvb:len() then error("varint cut short") end
    local b = tvb(off + i, 1):uint()
    value = value + (b % 128) * mult
    if b < 128 then return value, off + i + 1, i + 1 end
    mult = mult * 128
  end
  error("varint longer than 5 bytes")
end

-- Reassembly state per direction, rebuilt on every sequential pass (init), and the
-- messages each frame completed, remembered by frame number for later visits.
local inflight = {}
local completed = {}
local notes = {}

function locksync.init()
  inflight = {}
  completed = {}
  notes = {}
end

local function show_message(tree, pinfo, done)
  local tvb = done.bytes:tvb("locksync message")
  local mt = tree:add(locksync, tvb(), "locksync message")
  mt:add(f.message_id, done.id)
  mt:add(f.message_direction, done.direction)
  mt:add(f.message_length, tvb:len())
  mt:add(f.message_frames, done.frames)
  local ok, item = pcall(cbor, tvb, 0, 0)
  if not ok then
    mt:add_proto_expert_info(e_malformed, "message is not CBOR: " .. tostring(item))
    return
  end
  local typeItem = item.pairs and lookup(item, 0)
  local code = typeItem and typeItem.value
  local name = (type(code) == "number" and MESSAGE_TYPES[code]) or "unknown"
  mt:add(f.message_type, tvb(typeItem and typeItem.off or 0, typeItem and typeItem.len or 1), type(code) == "number" and code or 0)
  mt:add(f.message_type_name, name)
  mt:set_text(string.format("locksync %s message %s (%d bytes in %d frame%s, id 0x%04x)", done.direction, name, tvb:len(), done.frames, done.frames == 1 and "" or "s", done.id))
  if type(code) == "number" and S.message[code] then
    -- Key 0 is the type; the rest by the message's schema.
    local schema = S.message[code]
    for _, kv in ipairs(item.pairs) do
      local key = kv.k.value
      if key ~= 0 then
        local spec = schema[key]
        add_item(mt, tvb, kv.v, spec and spec[1] or ("key " .. tostring(key)), key, spec)
      end
    end
  else
    mt:add_proto_expert_info(e_malformed, "unknown message type")
  end
  pinfo.cols.info:append(string.format(" [locksync %s]", name))
end

local function frame_tree(tvb, pinfo, tree, characteristic)
  local direction = (characteristic == "locksync RX") and "phone→lock" or "lock→phone"
  local t = tree:add(locksync, tvb(), "locksync frame")
  t:add(f.characteristic, characteristic)
  if tvb:len() == 0 then
    t:add_proto_expert_info(e_malformed, "FRAME_TOO_SHORT: empty frame")
    return
  end
  local h = tvb(0, 1):uint()
  local ok, err = pcall(function()
    if h < 0x80 then
      t:add(f.frame_type, tvb(0, 1), h):set_text("Frame type: DATA (continuation)")
      t:add(f.frame_type_name, "DATA")
      t:add(f.seq, tvb(0, 1))
      if tvb:len() < 2 then error("FRAME_TOO_SHORT: DATA without payload") end
      t:add(f.payload, tvb(1))
      t:set_text(string.format("locksync DATA seq %d, %d payload bytes", h, tvb:len() - 1))
      pinfo.cols.info:append(string.format(" locksync DATA seq=%d", h))
      if not pinfo.visited then
        local m = inflight[direction]
        if m then
          m.chunks = m.chunks .. tvb(1):bytes():tohex()
          m.held = m.held + tvb:len() - 1
          m.frames = m.frames + 1
        else
          notes[pinfo.number] = "continuation of a message whose START is not in this capture"
        end
      end
      return
    end
    t:add(f.frame_type, tvb(0, 1))
    if FRAME_TYPES[h] then t:add(f.frame_type_name, FRAME_TYPES[h]) end
    if h == 0x80 then
      t:add(f.seq, tvb(1, 1))
      local id = tvb(2, 2):le_uint()
      t:add_le(f.message_id, tvb(2, 2))
      local total, p, n = varint(tvb, 4)
      t:add(f.total, tvb(4, n), total)
      local offset, q, m2 = varint(tvb, p)
      t:add(f.offset, tvb(p, m2), offset)
      if offset > total then error("MALFORMED_FRAME: offset > total") end
      if q < tvb:len() then t:add(f.payload, tvb(q)) end
      t:set_text(string.format("locksync START seq %d id 0x%04x total %d offset %d, %d payload bytes", tvb(1, 1):uint(), id, total, offset, tvb:len() - q))
      pinfo.cols.info:append(string.format(" locksync START id=0x%04x total=%d offset=%d", id, total, offset))
      if not pinfo.visited then
        local prior = inflight[direction]
        local payload = (q < tvb:len()) and tvb(q):bytes():tohex() or ""
        if offset == 0 then
          inflight[direction] = { id = id, total = total, chunks = payload, held = tvb:len() - q, frames = 1 }
        elseif prior and prior.id == id and prior.total == total and offset <= prior.held then
          prior.chunks = prior.chunks:sub(1, offset * 2) .. payload
          prior.held = offset + tvb:len() - q
          prior.frames = prior.frames + 1
        else
          inflight[direction] = nil
          notes[pinfo.number] = string.format("resumes message 0x%04x at byte %d: its first bytes are not in this capture", id, offset)
        end
      end
    elseif h == 0x81 then
      t:add(f.seq, tvb(1, 1))
      if tvb:len() ~= 2 then error("MALFORMED_FRAME: ACK is 2 bytes") end
      t:set_text(string.format("locksync ACK seq %d", tvb(1, 1):uint()))
      pinfo.cols.info:append(string.format(" locksync ACK seq=%d", tvb(1, 1):uint()))
    elseif h == 0x82 then
      t:add(f.version, tvb(1, 1))
      t:add(f.window, tvb(2, 1))
      local flags = tvb(3, 1):uint()
      t:add(f.flags, tvb(3, 1))
      local maxMsg, p, n = varint(tvb, 4)
      t:add(f.max_message, tvb(4, n), maxMsg)
      local text = string.format("locksync HELLO v%d window %d maxMsg %d", tvb(1, 1):uint(), tvb(2, 1):uint(), maxMsg)
      if flags % 2 == 1 then
        t:add_le(f.partial_id, tvb(p, 2))
        local total, p2, n2 = varint(tvb, p + 2)
        t:add(f.partial_total, tvb(p + 2, n2), total)
        local held, p3, n3 = varint(tvb, p2)
        t:add(f.partial_held, tvb(p2, n3), held)
        text = text .. string.format(", holds %d/%d of id 0x%04x", held, total, tvb(p, 2):le_uint())
        p = p3
      end
      if math.floor(flags / 2) % 2 == 1 then
        t:add_le(f.completed_id, tvb(p, 2))
        local total, p2, n2 = varint(tvb, p + 2)
        t:add(f.completed_total, tvb(p + 2, n2), total)
        text = text .. string.format(", completed id 0x%04x", tvb(p, 2):le_uint())
        p = p2
      end
      if p ~= tvb:len() then error("MALFORMED_FRAME: trailing bytes after HELLO") end
      t:set_text(text)
      pinfo.cols.info:append(" locksync HELLO")
    elseif h == 0x83 then
      if tvb:len() ~= 4 then error("MALFORMED_FRAME: ABORT is 4 bytes") end
      t:add_le(f.abort_id, tvb(1, 2))
      t:add(f.abort_reason, tvb(3, 1))
      t:set_text(string.format("locksync ABORT id 0x%04x %s", tvb(1, 2):le_uint(), FRAMING_ERRORS[tvb(3, 1):uint()] or "unknown reason"))
      pinfo.cols.info:append(" locksync ABORT")
    else
      error(string.format("UNKNOWN_FRAME_TYPE: 0x%02x", h))
    end
  end)
  if not ok then
    t:add_proto_expert_info(e_malformed, (tostring(err):gsub("^.-:%d+: ", "")))
    return
  end
  if not pinfo.visited and (h < 0x80 or h == 0x80) then
    local m = inflight[direction]
    if m and m.held >= m.total then
      inflight[direction] = nil
      completed[pinfo.number] = { bytes = ByteArray.new(m.chunks:sub(1, m.total * 2)), id = m.id, frames = m.frames, direction = direction }
    end
  end
  if notes[pinfo.number] then t:add_proto_expert_info(e_partial, notes[pinfo.number]) end
  if completed[pinfo.number] then show_message(tree, pinfo, completed[pinfo.number]) end
end

local function info_tree(tvb, pinfo, tree)
  local t = tree:add(locksync, tvb(), "locksync lockInfo")
  t:add(f.characteristic, "locksync INFO")
  local ok, item = pcall(cbor, tvb, 0, 0)
  if not ok or not item.pairs then
    t:add_proto_expert_info(e_malformed, "INFO value is not a CBOR lockInfo map")
    return
  end
  add_map(t, tvb, item, "lockInfo")
  pinfo.cols.info:append(" [locksync lockInfo]")
end

local function make_dissector(characteristic)
  return function(tvb, pinfo, tree)
    -- Values of reads (INFO) are lockInfo; writes and notifications carry frames. A Read
    -- Response has no handle of its own, so the ATT opcode tells which we were given.
    local op = att_opcode()
    local opcode = op and op.value or 0
    if characteristic == "locksync INFO" then
      if opcode == 0x0b or opcode == 0x0d then info_tree(tvb, pinfo, tree) end
      return tvb:len()
    end
    if opcode == 0x52 or opcode == 0x12 or opcode == 0x1b or opcode == 0x1d then
      pinfo.cols.protocol = "locksync"
      frame_tree(tvb, pinfo, tree, characteristic)
    end
    return tvb:len()
  end
end

local uuid_table = DissectorTable.get("bluetooth.uuid")
for uuid, name in pairs(UUIDS) do
  if name ~= "locksync service" then
    local p = Proto("locksync_" .. name:sub(10):lower(), name)
    p.dissector = make_dissector(name)
    uuid_table:add(uuid, p)
  end
end
