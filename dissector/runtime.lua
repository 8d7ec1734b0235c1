-- lmaho Lua runtime: the hand-written helpers that dissector/generator.py pastes
-- verbatim into dissector/lmaho.lua, ahead of the code it generates.
--
-- Nothing about the wire format lives here: no message, option, field, type
-- number or length. Every such fact reaches these helpers through the tables
-- the generated code fills in (R.F fields, R.E experts, R.MSG and R.OPT
-- descriptors, R.C constants), so the schema stays the only description.
--
-- Plain Lua 5.2 to 5.4: no bit32, no integer division operator, no goto.
-- Values come from one tvb:raw() string read with string.byte, because a Lua
-- call into the tvb per field costs more than the rest of the dissection.
-- Offsets are 0-based like tvb offsets; string positions are offset + 1.

local R = {}

local byte, sub, format, concat = string.byte, string.sub, string.format, table.concat
local floor = math.floor

R.F, R.E, R.C = {}, {}, {}
R.MSG, R.OPT = {}, {}
R.msg_by_type, R.opt_by_type = {}, {}
R.mh_names, R.opt_names = {}, {}

-- --- reading ----------------------------------------------------------------

function R.u8(s, o)
    return byte(s, o + 1)
end

function R.u16(s, o)
    local a, b = byte(s, o + 1, o + 2)
    return a * 256 + b
end

function R.u24(s, o)
    local a, b, c = byte(s, o + 1, o + 3)
    return (a * 256 + b) * 256 + c
end

function R.u32(s, o)
    local a, b, c, d = byte(s, o + 1, o + 4)
    return ((a * 256 + b) * 256 + c) * 256 + d
end

-- Exact up to 6 octets (2^48 fits a double); wider values are approximate,
-- which only ever affects a summary line, never a field value.
function R.uint(s, o, n)
    local x = 0
    for i = o + 1, o + n do
        x = x * 256 + byte(s, i)
    end
    return x
end

-- Bitwise AND by arithmetic: bit32 is gone in 5.4 and `&` is a syntax error in 5.2.
function R.band(a, b)
    local r, bit = 0, 1
    while a > 0 and b > 0 do
        if a % 2 == 1 and b % 2 == 1 then
            r = r + bit
        end
        a, b, bit = floor(a / 2), floor(b / 2), bit * 2
    end
    return r
end

-- --- showing values ----------------------------------------------------------

function R.hex(raw)
    local n = #raw
    if n == 0 then
        return ""
    end
    local t = { byte(raw, 1, n) }
    for i = 1, n do
        t[i] = format("%02x", t[i])
    end
    return concat(t, ":")
end

-- Printable ASCII as is, everything else escaped: the result goes into
-- columns and labels, which must not receive control characters.
function R.text(raw)
    if not raw:find("[^\32-\126]") then
        return raw
    end
    return (raw:gsub("[^\32-\126]", function(c)
        return format("\\x%02x", byte(c))
    end))
end

function R.ipv4(raw)
    if #raw ~= 4 then
        return R.hex(raw)
    end
    return format("%d.%d.%d.%d", byte(raw, 1, 4))
end

-- RFC 5952 text: lower-case hex, the longest run (two or more) of zero
-- groups, the first of equal runs, written as "::".
function R.ipv6(raw)
    if #raw ~= 16 then
        return R.hex(raw)
    end
    local w = {}
    for i = 1, 8 do
        local a, b = byte(raw, 2 * i - 1, 2 * i)
        w[i] = a * 256 + b
    end
    local best, best_len, run, run_len = 0, 0, 0, 0
    for i = 1, 8 do
        if w[i] == 0 then
            if run_len == 0 then
                run = i
            end
            run_len = run_len + 1
            if run_len > best_len then
                best, best_len = run, run_len
            end
        else
            run_len = 0
        end
    end
    local parts = {}
    for i = 1, 8 do
        parts[i] = format("%x", w[i])
    end
    if best_len < 2 then
        return concat(parts, ":")
    end
    local head = concat(parts, ":", 1, best - 1)
    local tail = concat(parts, ":", best + best_len, 8)
    return head .. "::" .. tail
end

-- Parse an IPv6 address as Wireshark prints it ("2001:db8::1",
-- "::ffff:192.0.2.1", "fe80::1%eth0") into eight 16-bit words, or nil.
function R.parse_ipv6(text)
    if type(text) ~= "string" or #text < 2 or #text > 64 then
        return nil
    end
    text = text:gsub("%%.*$", "")
    local v4 = nil
    local a, b, c, d = text:match(":(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    if a then
        a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
        if a > 255 or b > 255 or c > 255 or d > 255 then
            return nil
        end
        v4 = { a * 256 + b, c * 256 + d }
        text = text:gsub("[%d%.]+$", "0:0")
    end
    local function groups(part)
        local out = {}
        if part == "" then
            return out
        end
        for g in (part .. ":"):gmatch("([^:]*):") do
            if not g:match("^%x%x?%x?%x?$") then
                return nil
            end
            out[#out + 1] = tonumber(g, 16)
        end
        return out
    end
    local words
    local left, right = text:match("^(.-)::(.*)$")
    if left then
        if right:find("::", 1, true) then
            return nil
        end
        local l, r = groups(left), groups(right)
        if not l or not r or #l + #r > 7 then
            return nil
        end
        words = {}
        for i = 1, #l do
            words[#words + 1] = l[i]
        end
        for _ = 1, 8 - #l - #r do
            words[#words + 1] = 0
        end
        for i = 1, #r do
            words[#words + 1] = r[i]
        end
    else
        words = groups(text)
        if not words or #words ~= 8 then
            return nil
        end
    end
    if v4 then
        words[7], words[8] = v4[1], v4[2]
    end
    return words
end

function R.enum(vs, x)
    local name = vs[x]
    if name then
        return name
    end
    return format("Unknown (%d)", x)
end

-- "Flags: 0x8000 (T)": the value and the names of the set flags.
function R.flags_label(label, x, width, flags)
    local set = {}
    for i = 1, #flags do
        if R.band(x, flags[i][1]) ~= 0 then
            set[#set + 1] = flags[i][2]
        end
    end
    local digits = format("%%s: 0x%%0%dx", width / 4)
    local text = format(digits, label, x)
    if #set > 0 then
        text = text .. " (" .. concat(set, ", ") .. ")"
    end
    return text
end

function R.scaled_label(label, x, factor, unit)
    return format("%s: %d (%d %s)", label, x, x * factor, unit)
end

-- An NSTime from a count of seconds and a fraction over `scale`.
function R.nstime(seconds, fraction, scale)
    return NSTime.new(seconds, floor(fraction * 1000000000 / scale))
end

-- An NSTime from a (possibly negative) difference of two float times,
-- rounded to the nanosecond.
function R.delta(x)
    local neg = x < 0
    if neg then
        x = -x
    end
    local secs = floor(x)
    local ns = floor((x - secs) * 1000000000 + 0.5)
    if ns >= 1000000000 then
        secs, ns = secs + 1, ns - 1000000000
    end
    if neg then
        return NSTime.new(-secs, -ns)
    end
    return NSTime.new(secs, ns)
end

function R.utc(seconds, fraction, scale)
    if seconds > 253402300799 then
        return format("%d+%d/%d s", seconds, fraction, scale)
    end
    local ok, text = pcall(os.date, "!%Y-%m-%d %H:%M:%S", seconds)
    if not ok or type(text) ~= "string" then
        return format("%d s", seconds)
    end
    return format("%s.%06d UTC", text, floor(fraction * 1000000 / scale))
end

function R.seconds(x)
    return format("%.6f s", x)
end

-- --- tree helpers --------------------------------------------------------------

-- A field that needs `need` octets where fewer are left: flag it on the
-- bytes that are there and tell the caller to stop at `stop`.
function R.short(tvb, t, pos, stop, what, need)
    if t then
        local left = stop - pos
        if left < 0 then
            left = 0
        end
        t:add_tvb_expert_info(
            R.E.field_short,
            tvb(pos, left),
            format("%s needs %d octet(s), %d left", what, need, left)
        )
    end
    return stop
end

function R.trailing(tvb, t, pos, stop)
    if t and stop > pos then
        t:add_tvb_expert_info(
            R.E.field_trailing,
            tvb(pos, stop - pos),
            format("%d unexpected octet(s) after the last field", stop - pos)
        )
    end
    return stop
end

-- Octet fields: an empty one still gets an item, so filters see it.
function R.add_bytes(t, field, tvb, pos, n, label)
    if n == 0 then
        return t:add(field, tvb(pos, 0), "", label .. ": (empty)")
    end
    return t:add(field, tvb(pos, n))
end

function R.add_text(t, field, tvb, pos, n, label)
    if n == 0 then
        return t:add(field, tvb(pos, 0), "", label .. ": (empty)")
    end
    return t:add_packet_field(field, tvb(pos, n), ENC_UTF_8)
end

-- --- mobility options ------------------------------------------------------------

local opt_type_labels = {}

function R.opt_type_label(ty)
    local label = opt_type_labels[ty]
    if label == nil then
        label = format("Type: %s (%d)", R.opt_names[ty] or "Unknown", ty)
        opt_type_labels[ty] = label
    end
    return label
end

-- One option at `pos` (its Type octet); returns the offset after it.
-- ctx.base is the offset of the Mobility Header in `s` when alignment can be
-- checked (nil when Wireshark's own MIPv6 dissector hands over one option);
-- ctx.visible asks for summary lines; ctx collects the MN identifier.
function R.option(tvb, s, tree, pos, stop, ctx)
    local C, F, E = R.C, R.F, R.E
    local ty = byte(s, pos + 1)
    local d = R.opt_by_type[ty] or R.unknown_opt
    if ty == C.pad1 then
        if tree then
            local it = tree:add(R.pad1_opt.field, tvb(pos, 1))
            it:add(F.opt_type, tvb(pos, 1), ty, R.opt_type_label(ty))
        end
        return pos + 1
    end
    if pos + 2 > stop then
        if tree then
            tree:add_tvb_expert_info(
                E.opt_no_length,
                tvb(pos, stop - pos),
                format("%s option (type %d) has no Length octet", d.title, ty)
            )
        end
        return stop
    end
    local len = byte(s, pos + 2)
    local dend = pos + 2 + len
    local over = dend > stop
    if over then
        dend = stop
    end
    local it = nil
    if tree then
        it = tree:add(d.field, tvb(pos, dend - pos))
        it:add(F.opt_type, tvb(pos, 1), ty, R.opt_type_label(ty))
        it:add(F.opt_length, tvb(pos + 1, 1), len)
        if over then
            it:add_tvb_expert_info(
                E.opt_overrun,
                tvb(pos + 1, 1),
                format(
                    "%s option length %d runs past the end of the Mobility Header (%d octets left)",
                    d.title,
                    len,
                    stop - pos - 2
                )
            )
        elseif d.length and len ~= d.length then
            it:add_tvb_expert_info(
                E.opt_bad_length,
                tvb(pos + 1, 1),
                format("%s option has length %d, must be %d", d.title, len, d.length)
            )
        elseif len < d.min then
            it:add_tvb_expert_info(
                E.opt_bad_length,
                tvb(pos + 1, 1),
                format("%s option has length %d, at least %d needed", d.title, len, d.min)
            )
        end
        if ctx.base and d.ax and (pos - ctx.base) % d.ax ~= d.ay then
            it:add_tvb_expert_info(
                E.opt_misaligned,
                tvb(pos, 1),
                format(
                    "%s option starts at offset %d, not aligned %dn+%d",
                    d.title,
                    pos - ctx.base,
                    d.ax,
                    d.ay
                )
            )
        end
        if d == R.unknown_opt then
            it:add_tvb_expert_info(
                E.opt_unknown,
                tvb(pos, 1),
                format("Unknown mobility option type %d, skipped", ty)
            )
        end
        if ty == C.padn and sub(s, pos + 3, dend):find("[^%z]") then
            it:add_tvb_expert_info(
                E.padn_nonzero,
                tvb(pos + 2, dend - pos - 2),
                "PadN option carries non-zero octets"
            )
        end
    end
    local wanted = d.key == C.mnid_key and ctx.mnid == nil
    if it or wanted then
        local v = {}
        d.dissect(tvb, s, it, pos + 2, dend, v)
        if it and ctx.visible then
            local text = d.summary(v)
            if text ~= "" then
                it:append_text(": " .. text)
            end
        end
        if wanted then
            ctx.mnid = sub(s, pos + 3, dend)
            ctx.mnid_text = d.info(v)
        end
    end
    return dend
end

function R.options(tvb, s, tree, pos, stop, ctx)
    while pos < stop do
        pos = R.option(tvb, s, tree, pos, stop, ctx)
        if not tree and ctx.mnid then
            -- Without a tree only the MN identifier is wanted.
            break
        end
    end
    return pos
end

-- --- checksum ------------------------------------------------------------------

-- The Internet checksum of s[1..n] (the checksum field, 1-based `skip` and
-- skip+1, counted as zero) under an IPv6 pseudo-header of 8-word addresses.
function R.checksum(s, n, skip, src, dst, next_header)
    local sum = floor(n / 65536) + n % 65536 + next_header
    for i = 1, 8 do
        sum = sum + src[i] + dst[i]
    end
    -- Eight octets per string.byte call: the call, not the addition, is the cost.
    local i = 1
    while i + 7 <= n do
        local a, b, c, d, e, f, g, h = byte(s, i, i + 7)
        sum = sum + (a + c + e + g) * 256 + b + d + f + h
        i = i + 8
    end
    while i < n do
        local a, b = byte(s, i, i + 1)
        sum = sum + a * 256 + b
        i = i + 2
    end
    if i == n then
        sum = sum + byte(s, n) * 256
    end
    -- The checksum field itself counts as zero.
    local a, b = byte(s, skip, skip + 1)
    sum = sum - (a * 256 + b)
    while sum > 65535 do
        sum = sum % 65536 + floor(sum / 65536)
    end
    return 65535 - sum
end

-- A capture has few addresses and many packets: parse each once.
local address_cache, address_count = {}, 0

function R.address_words(text)
    local words = address_cache[text]
    if words == nil then
        words = R.parse_ipv6(text) or false
        if address_count > 10000 then
            address_cache, address_count = {}, 0
        end
        address_cache[text] = words
        address_count = address_count + 1
    end
    return words or nil
end

-- Verify and show. The pseudo-header addresses come from pinfo as text:
-- with network name resolution on they may be names, and then the checksum
-- is left unverified rather than guessed.
function R.verify_checksum(tvb, s, t, pinfo, total, value)
    local C, F, E = R.C, R.F, R.E
    local at = C.checksum_offset
    if #s < total then
        t:add(F.checksum_status, tvb(at, 2), 2):set_generated()
        return
    end
    local src = R.address_words(tostring(pinfo.src))
    local dst = R.address_words(tostring(pinfo.dst))
    if not src or not dst then
        t:add(F.checksum_status, tvb(at, 2), 2):set_generated()
        return
    end
    local want = R.checksum(s, total, at + 1, src, dst, C.next_header)
    t:add(F.checksum_calculated, tvb(at, 2), want):set_generated()
    if want == value then
        t:add(F.checksum_status, tvb(at, 2), 1):set_generated()
    else
        local it = t:add(F.checksum_status, tvb(at, 2), 0)
        it:set_generated()
        it:add_proto_expert_info(
            E.checksum_bad,
            format("Bad checksum 0x%04x, should be 0x%04x", value, want)
        )
    end
end

-- --- request/response and handover tracking ------------------------------------------

-- Per-frame results live in one array per attribute, indexed by frame
-- number: numbers in arrays give the garbage collector nothing to chase,
-- where a table per frame made tracking most of the dissector's cost.
local RESPONSE_IN, RESPONSE_TO, TIME, RETRANSMISSION_OF = 1, 2, 3, 4
local HO_START, HO_ELAPSED, HO_DURATION, HO_SUCCESS = 5, 6, 7, 8

function R.reset()
    R.tr = {
        seen = {},
        f = { {}, {}, {}, {}, {}, {}, {}, {} },
        requests = {},
        handovers = {},
    }
end
R.reset()

-- What one frame is to the others, worked out on the first pass (the only
-- one where frames come in order) and kept by frame number for later passes;
-- returns the frame number, the key to R.show_tracking.
-- `d` is the message descriptor, `v` its fixed-part values, `mnid` the raw
-- MN identifier option data (nil when absent). Requests and responses pair
-- by message, Sequence Number and MN identifier (docs/wire-format.md 3),
-- the way a PBA answers its PBU.
function R.track(pinfo, d, v, mnid)
    local tr = R.tr
    local num = pinfo.number
    if tr.seen[num] then
        return num
    end
    tr.seen[num] = true
    local f = tr.f
    local C = R.C
    -- rel_ts, not abs_ts: small values keep nanoseconds in a double.
    local now = pinfo.rel_ts
    local seq = v[C.sequence] or -1
    local key = d.pair .. "\0" .. seq .. "\0" .. (mnid or "")
    local success = true
    local req = tr.requests[key]
    if d.role == "response" then
        local status = v[C.status]
        success = status == nil or status < C.success_below
        if req then
            f[RESPONSE_TO][num] = req.frame
            f[TIME][num] = now - req.time
            if req.response then
                f[RETRANSMISSION_OF][num] = req.response
            else
                req.response = num
                f[RESPONSE_IN][req.frame] = num
            end
        end
    elseif req and not req.response then
        f[RETRANSMISSION_OF][num] = req.frame
    else
        -- A request after the answer is a new exchange (sequence numbers wrap).
        req = { frame = num, time = now, ho = false, response = false }
        tr.requests[key] = req
    end
    if mnid == nil then
        return num
    end
    -- The handover of this MN (draft section 4.2): opened by its first
    -- request, answered, registered by a PBU, completed by the PBA.
    local h = tr.handovers[mnid]
    if d.key == C.ho_start and not (h and h.open and h.seq == seq) then
        h = { start = num, time = now, seq = seq, open = true, answered = false }
        tr.handovers[mnid] = h
    end
    if not (h and h.open) then
        return num
    end
    if d.key == C.ho_register then
        if not h.answered then
            return num
        end
        if req then
            req.ho = h
        end
    elseif d.key == C.ho_complete and not (req and req.ho == h) then
        return num
    end
    f[HO_START][num] = h.start
    f[HO_ELAPSED][num] = now - h.time
    local ends = d.key == C.ho_complete
    if d.role == "response" and d.pair == C.ho_start then
        h.answered = success
        ends = not success
    end
    if ends then
        h.open = false
        f[HO_DURATION][num] = now - h.time
        f[HO_SUCCESS][num] = success
    end
    return num
end

function R.show_tracking(t, num)
    local F, E = R.F, R.E
    local f = R.tr.f
    local x = f[RESPONSE_IN][num]
    if x then
        t:add(F.response_in, x):set_generated()
    end
    x = f[RESPONSE_TO][num]
    if x then
        t:add(F.response_to, x):set_generated()
        t:add(F.time, R.delta(f[TIME][num])):set_generated()
    end
    x = f[RETRANSMISSION_OF][num]
    if x then
        local it = t:add(F.retransmission_of, x)
        it:set_generated()
        it:add_proto_expert_info(E.retransmission, format("Retransmission of frame %d", x))
    end
    x = f[HO_START][num]
    if x and x ~= num then
        t:add(F.ho_start, x):set_generated()
        t:add(F.ho_elapsed, R.delta(f[HO_ELAPSED][num])):set_generated()
    end
    x = f[HO_DURATION][num]
    if x then
        local it = t:add(F.ho_duration, R.delta(x))
        it:set_generated()
        local ok = f[HO_SUCCESS][num]
        t:add(F.ho_success, ok):set_generated()
        if ok then
            it:add_proto_expert_info(E.ho_completed, format("Handover completed in %s", R.seconds(x)))
        else
            it:add_proto_expert_info(E.ho_failed, format("Handover failed after %s", R.seconds(x)))
        end
    end
end

function R.is_retransmission(num)
    return R.tr.f[RETRANSMISSION_OF][num] ~= nil
end

-- "LMA Handover Response (LMA_HO_Resp) Seq=9 Status=ACCEPTED MN-ID=mn1@example",
-- built in one concatenation: the Info column is set for every packet.
function R.info(d, v, mnid_text, num)
    local C = R.C
    local seq = v[C.sequence]
    local status = v[C.status]
    return d.label
        .. (seq and format(" Seq=%d", seq) or "")
        .. ((status and d.status_vs) and (" Status=" .. R.enum(d.status_vs, status)) or "")
        .. (mnid_text and (" MN-ID=" .. mnid_text) or "")
        .. (num and R.is_retransmission(num) and " [Retransmission]" or "")
end

-- --- the Mobility Header ----------------------------------------------------------

-- Wireshark's MIPv6 dissector throws on a packet too short for it; Lua's
-- Dissector:call has then already shown that as Wireshark's own "Malformed
-- Packet" item (as without lmaho) and turns the exception into a Lua error,
-- which is swallowed here so that it does not also show as a Lua error.
local function mip6_call(tvb, pinfo, root)
    return R.mip6:call(tvb, pinfo, root)
end

function R.call_mip6(tvb, pinfo, root)
    local ok, len = pcall(mip6_call, tvb, pinfo, root)
    if ok then
        return len
    end
    return tvb:len()
end

function R.is_proxy(d, v)
    if not d.proxy_mask then
        return true
    end
    local flags = v[d.proxy_field]
    return flags ~= nil and R.band(flags, d.proxy_mask) ~= 0
end

-- Header, fixed part and options of message `d`, shown under `t` when it is
-- a tree. Returns the header values, the fixed-part values and the length
-- Header Len gives, or nil when not even the header is there.
function R.decode(d, tvb, s, t, cap, ctx)
    local C, E, F = R.C, R.E, R.F
    local hv = {}
    local pos = R.header(tvb, s, t, 0, cap, hv)
    if pos < C.header_size then
        if t then
            t:add_tvb_expert_info(
                E.truncated,
                tvb(0, cap),
                format(
                    "Truncated Mobility Header: %d octets, the header alone has %d",
                    cap,
                    C.header_size
                )
            )
        end
        return nil
    end
    local total = C.header_size + R.msg_len(hv)
    local stop = total
    if total > cap then
        stop = cap
        if t then
            t:add_tvb_expert_info(
                E.header_len_long,
                tvb(C.header_len_offset, 1),
                format(
                    "Header Len %d says %d octets but only %d are present",
                    hv[C.header_len],
                    total,
                    cap
                )
            )
        end
    elseif total < cap and t then
        t:add_tvb_expert_info(
            E.after_mh,
            tvb(total, cap - total),
            format("%d octet(s) after the %d octets that Header Len gives", cap - total, total)
        )
    end
    if t then
        t:set_len(stop)
        if hv[C.payload_proto] ~= C.no_next_header then
            t:add_tvb_expert_info(
                E.payload_proto,
                tvb(0, 1),
                format("Payload Proto is %d, RFC 6275 wants %d", hv[C.payload_proto], C.no_next_header)
            )
        end
    end
    local fixed_end = pos + d.length
    local fstop = fixed_end
    if fstop > stop then
        fstop = stop
        if t and total < fixed_end then
            t:add_tvb_expert_info(
                E.header_len_short,
                tvb(C.header_len_offset, 1),
                format(
                    "%s needs %d octets of message data, Header Len leaves %d",
                    d.title,
                    d.length,
                    total - C.header_size
                )
            )
        end
    end
    local mt = nil
    if t then
        mt = t:add(d.field, tvb(pos, fstop - pos))
    end
    local v = {}
    d.dissect(tvb, s, mt, pos, fstop, v)
    if fixed_end < stop then
        local ot = nil
        if t then
            ot = t:add(F.options, tvb(fixed_end, stop - fixed_end))
        end
        ctx.base = 0
        R.options(tvb, s, ot, fixed_end, stop, ctx)
    end
    return hv, v, total
end

-- The tree-less path: what the Info column and the tracking need, read at
-- the offsets the generator worked out, without tables of field values for
-- anything else. Returns nil when the packet is too broken for that; the
-- tree path (when there is one) shows why.
function R.quick(d, s, cap)
    local C = R.C
    if cap < C.header_size then
        return nil
    end
    local total = C.header_size + R.msg_len_of(byte(s, C.header_len_offset + 1))
    local stop = total
    if stop > cap then
        stop = cap
    end
    local fixed_end = C.header_size + d.length
    if fixed_end > stop then
        return nil
    end
    local v = {}
    local q = d.quick
    for i = 1, #q do
        local f = q[i]
        local at, size = f[2], f[3]
        local x = byte(s, at + 1)
        for j = at + 2, at + size do
            x = x * 256 + byte(s, j)
        end
        v[f[1]] = x
    end
    local pos = fixed_end
    local mnid_type = R.mnid_type
    while pos + 1 < stop do
        local ty = byte(s, pos + 1)
        if ty == C.pad1 then
            pos = pos + 1
        else
            local dend = pos + 2 + byte(s, pos + 2)
            if dend > stop then
                break
            end
            if ty == mnid_type then
                local od = R.opt_by_type[ty]
                local w = {}
                od.dissect(nil, s, nil, pos + 2, dend, w)
                return v, sub(s, pos + 3, dend), od.info(w)
            end
            pos = dend
        end
    end
    return v, nil, nil
end

-- Without a tree (tshark printing summaries only) `root` wraps no item, and
-- only the columns and the tracking are worked out: that path must cost
-- little, so it makes no tree items and reads only what it needs.
function R.dissect(tvb, pinfo, root)
    local C, E = R.C, R.E
    local cap = tvb:len()
    if cap <= C.type_offset then
        return R.call_mip6(tvb, pinfo, root)
    end
    local s = tvb:raw(0, cap)
    local d = R.msg_by_type[byte(s, C.type_offset + 1)]
    if d == nil then
        return R.call_mip6(tvb, pinfo, root)
    end
    local tree = root.text ~= nil
    if d.delegated then
        -- Wireshark's own tree first, untouched; lmaho adds its tracking only
        -- for the proxy variant (PBU/PBA), never to plain MIPv6.
        R.call_mip6(tvb, pinfo, root)
        local v, mnid = R.quick(d, s, cap)
        if not v or not R.is_proxy(d, v) then
            return cap
        end
        local rec = R.track(pinfo, d, v, mnid)
        if not tree then
            return cap
        end
        local t = root:add(R.proto, tvb(0, cap))
        t:append_text(", " .. d.proxy_name)
        local total = C.header_size + R.msg_len_of(byte(s, C.header_len_offset + 1))
        if R.show_pmip then
            R.decode(d, tvb, s, t, cap, { visible = root.visible })
        else
            t:set_len(math.min(total, cap))
        end
        if R.verify then
            R.verify_checksum(tvb, s, t, pinfo, total, R.u16(s, C.checksum_offset))
        end
        R.show_tracking(t, rec)
        return cap
    end
    local cols = pinfo.cols
    cols.protocol = C.column
    if not tree then
        local v, mnid, mnid_text = R.quick(d, s, cap)
        if not v then
            cols.info = d.label .. " [Malformed]"
            return cap
        end
        cols.info = R.info(d, v, mnid_text, R.track(pinfo, d, v, mnid))
        return cap
    end
    local t = root:add(R.proto, tvb(0, cap))
    local ctx = { visible = root.visible }
    local hv, v, total = R.decode(d, tvb, s, t, cap, ctx)
    if not hv then
        cols.info = d.label .. " [Malformed]"
        return cap
    end
    local rec = R.track(pinfo, d, v, ctx.mnid)
    cols.info = R.info(d, v, ctx.mnid_text, rec)
    t:append_text(", " .. d.name)
    if R.verify then
        R.verify_checksum(tvb, s, t, pinfo, total, hv[C.checksum])
    end
    local status = v[C.status]
    if d.role == "response" and status and status >= C.success_below then
        t:add_proto_expert_info(
            E.status_failure,
            format("%s status %s: failure", d.name, R.enum(d.status_vs or {}, status))
        )
    end
    R.show_tracking(t, rec)
    return cap
end

-- One option handed over by Wireshark's MIPv6 dissector (mip6.option table):
-- the tvb holds Type, Length and data; alignment is not checkable here.
function R.dissect_option(tvb, pinfo, tree)
    local cap = tvb:len()
    if cap == 0 then
        return 0
    end
    local s = tvb:raw(0, cap)
    local ctx = { visible = tree.visible }
    R.option(tvb, s, tree, 0, cap, ctx)
    return cap
end

-- Last guard only: the dissector bounds-checks everything itself, but a bug
-- must show as an expert item, never as a Lua error that stops the tree.
function R.guarded(fn)
    return function(tvb, pinfo, root)
        local ok, res = pcall(fn, tvb, pinfo, root)
        if ok then
            return res
        end
        root:add_proto_expert_info(R.E.internal, "lmaho dissector error: " .. tostring(res))
        return tvb:len()
    end
end

-- The type numbers in force: fixed ones from the schema, the draft's from
-- the preferences. Also (re)registers the draft's options in Wireshark's
-- mip6.option table, so they decode inside its own PBU/PBA too.
function R.apply_prefs(prefs)
    local by_type, names = {}, {}
    for t, n in pairs(R.mh_names_fixed) do
        names[t] = n
    end
    for _, d in ipairs(R.MSG) do
        local t = d.type
        if d.pref then
            t = prefs[d.pref]
        end
        d.current = t
        by_type[t] = d
        if not d.delegated then
            names[t] = d.name
        end
        d.label = d.title .. " (" .. d.name .. ")"
    end
    R.msg_by_type, R.mh_names = by_type, names
    local opt_by, opt_names = {}, {}
    for _, d in ipairs(R.OPT) do
        local t = d.type
        if d.pref then
            t = prefs[d.pref]
            if d.registered ~= t then
                if d.registered then
                    R.opt_table:remove(d.registered, R.opt_proto)
                end
                R.opt_table:add(t, R.opt_proto)
                d.registered = t
            end
        end
        if d.type == R.C.pad1 then
            R.pad1_opt = d
        end
        if d.key == R.C.mnid_key then
            R.mnid_type = t
        end
        opt_by[t] = d
        opt_names[t] = d.title
    end
    R.opt_by_type, R.opt_names = opt_by, opt_names
    opt_type_labels = {}
    R.verify = prefs.verify_checksum
    R.show_pmip = prefs.show_pmip
end
