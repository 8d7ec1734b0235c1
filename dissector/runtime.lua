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

-- Wireshark's API, called directly where the per-packet paths use it.
-- `tvb:raw()` or `pinfo.number` first runs the userdata's __index
-- dispatcher, which costs more than the call itself (about 1,000 machine
-- instructions an access, a sixth of the tree-less path): the methods are
-- taken from their class tables, and the attribute getters of Pinfo and
-- TreeItem from the __getters table where wslua keeps them (read from the
-- first packet's objects; plain indexing if a Wireshark keeps them elsewhere).
-- All are bound on the first packet, by R.dissect, the only entry point.
local tvb_raw, dissector_call, pinfo_number, pinfo_rel_ts, pinfo_cols, item_text, item_visible
local pinfo_src, pinfo_dst
-- TreeItem.add, as the generated code calls it (nil outside Wireshark).
local tree_add = TreeItem and TreeItem.add

local function getter(object, name)
    local mt = getmetatable(object)
    local getters = type(mt) == "table" and rawget(mt, "__getters")
    local fn = type(getters) == "table" and rawget(getters, name)
    if type(fn) == "function" then
        return fn
    end
    return function(o)
        return o[name]
    end
end

local function bind_api(pinfo, root)
    tvb_raw, dissector_call = Tvb.raw, Dissector.call
    pinfo_number, pinfo_rel_ts = getter(pinfo, "number"), getter(pinfo, "rel_ts")
    pinfo_cols, item_text = getter(pinfo, "cols"), getter(root, "text")
    item_visible = getter(root, "visible")
    pinfo_src, pinfo_dst = getter(pinfo, "src"), getter(pinfo, "dst")
end

R.F, R.E, R.C = {}, {}, {}

-- `t`, emptied. The per-packet paths reuse their tables rather than make new
-- ones: the tree paths their tables of decoded values (a new one costs a few
-- allocations as its keys come in, and is garbage for the collector), the
-- bounded caches and pairing maps theirs when they start afresh (a table
-- that grows again past a kilobyte makes glibc's malloc consolidate every
-- small chunk freed since, which the collector has just freed by the
-- thousand: half of lmaho's cache misses in a filter run were there).
local function emptied(t)
    for key in next, t do
        t[key] = nil
    end
    return t
end
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
local find = string.find

function R.text(raw)
    if not find(raw, "[^\32-\126]") then
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

-- Labels are made only for a tree that is shown (R.visible, set for each
-- packet from the tree): when Wireshark builds a tree only to filter or
-- colour, no one reads them, and a nil label leaves the item's text to
-- Wireshark (which makes it only if it is ever shown).
R.visible = true

-- Whether single-bit `mask` is set in x, by arithmetic.
local function bit_set(x, mask)
    return floor(x / mask) % 2 == 1
end

-- Labels and option summaries repeat from packet to packet (the same flags,
-- lifetimes, padding, prefixes): each kind is kept by what it is made from,
-- at most TEXTS_KEPT of them (a cache that grew with the capture would be
-- live objects for the collector to mark at every cycle). Emptied when the
-- preferences change, since names follow them.
local TEXTS_KEPT = 256
local text_caches = {}

local function text_cache()
    local cache = { texts = {}, count = 0 }
    text_caches[#text_caches + 1] = cache
    return cache
end

local function remember(cache, key, text)
    if cache.count >= TEXTS_KEPT then
        emptied(cache.texts)
        cache.count = 0
    end
    cache.texts[key] = text
    cache.count = cache.count + 1
    return text
end

-- One cache per `owner` (a flags table, a label), made on first use.
local function cache_of(caches, owner)
    local cache = caches[owner]
    if cache == nil then
        cache = text_cache()
        caches[owner] = cache
    end
    return cache
end

local flags_labels, scaled_labels, mh_type_labels = {}, {}, {}

-- A label kept in `cache` by `key`, or nil: `make` (called only when the
-- key is new) returns nil where Wireshark's own text for the field is the
-- same, which it makes in C and only if the item is ever shown.
local function kept_label(cache, key, make, ...)
    local text = cache.texts[key]
    if text == nil then
        text = remember(cache, key, make(...) or false)
    end
    return text or nil
end

-- "Flags: 0x8000 (T)": the value and the names of the set flags; with none
-- set, Wireshark's "Flags: 0x0000".
function R.flags_label(label, x, width, flags)
    if not R.visible then
        return nil
    end
    return kept_label(cache_of(flags_labels, flags), x, R.make_flags_label, label, x, width, flags)
end

function R.make_flags_label(label, x, width, flags)
    local set = {}
    for i = 1, #flags do
        local mask = flags[i][1]
        local on
        if mask > 0 and 2 ^ floor(math.log(mask, 2) + 0.5) == mask then
            on = bit_set(x, mask)
        else
            on = R.band(x, mask) ~= 0
        end
        if on then
            set[#set + 1] = flags[i][2]
        end
    end
    if #set == 0 then
        return nil
    end
    local digits = format("%%s: 0x%%0%dx", width / 4)
    return format(digits, label, x) .. " (" .. concat(set, ", ") .. ")"
end

function R.scaled_label(label, x, factor, unit)
    if not R.visible then
        return nil
    end
    local by_unit = scaled_labels[label]
    if by_unit == nil then
        by_unit = {}
        scaled_labels[label] = by_unit
    end
    local by_factor = by_unit[unit]
    if by_factor == nil then
        by_factor = {}
        by_unit[unit] = by_factor
    end
    local cache = cache_of(by_factor, factor)
    return cache.texts[x] or remember(cache, x, format("%s: %d (%d %s)", label, x, x * factor, unit))
end

-- "MH Type: LMA_HO_Req (200)": the names follow the preferences. Wireshark
-- shows the field with the names registered with it (the defaults), so a label
-- is needed only for a type whose name in force differs: one a preference
-- moved, or the type it moved from.
local function type_label(label, name, x)
    return format("%s: %s (%d)", label, name or "Unknown", x)
end

function R.mh_type_label(label, x)
    if not R.visible or R.mh_names[x] == R.mh_names_registered[x] then
        return nil
    end
    return kept_label(cache_of(mh_type_labels, label), x, type_label, label, R.mh_names[x], x)
end

-- An option's summary line (": Prefix Length 64, Prefix 2001:db8:100::"),
-- by the option's octets.
local option_summaries = text_cache()

-- Forget every kept text (the preferences changed the names in them).
local function forget_texts()
    for _, cache in ipairs(text_caches) do
        emptied(cache.texts)
        cache.count = 0
    end
end

-- TreeItem methods called directly (nil outside Wireshark): through the
-- item's __index dispatcher a method call costs about 1,000 machine
-- instructions more.
local append_text = TreeItem and TreeItem.append_text
local set_len = TreeItem and TreeItem.set_len
local set_generated = TreeItem and TreeItem.set_generated
local add_packet_field = TreeItem and TreeItem.add_packet_field

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

-- What one decoding collects beyond the values (see R.option), reset for
-- each message by `decode_context`.
local context = {}

local function decode_context(visible)
    context.visible, context.base, context.mnid, context.uncaptured = visible, nil, nil, nil
    return context
end

-- Damage found without a tree (t nil): the tree-less path reads a message
-- with t nil first and, when this is set, again over the tree that wraps no
-- item, so that the expert items say what is wrong (R.dissect).
R.damaged = false

-- A field that needs `need` octets where fewer are left: flag it on the
-- bytes that are there and tell the caller to stop at `stop`.
function R.short(tvb, t, pos, stop, what, need)
    R.damaged = true
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
    R.damaged = true
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
        return tree_add(t, field, tvb(pos, 0), "", label .. ": (empty)")
    end
    return tree_add(t, field, tvb(pos, n))
end

function R.add_text(t, field, tvb, pos, n, label)
    if n == 0 then
        return tree_add(t, field, tvb(pos, 0), "", label .. ": (empty)")
    end
    return add_packet_field(t, field, tvb(pos, n), ENC_UTF_8)
end

-- --- mobility options ------------------------------------------------------------

-- "Type: Mobile Node Identifier (8)", as R.mh_type_label: nil (Wireshark's
-- own text) unless a preference moved the type.
local opt_type_labels = {}

function R.opt_type_label(ty)
    local label = opt_type_labels[ty]
    if label == nil then
        local name = R.opt_names[ty]
        label = name ~= R.opt_names_registered[ty] and type_label("Type", name, ty)
        opt_type_labels[ty] = label
    end
    return label or nil
end

-- The option tables in force, in locals for the per-packet paths (set by
-- R.apply_prefs).
local opt_by_type, unknown_opt, pad1_type, padn_type = {}, nil, nil, nil

-- One option's framing at `pos` (its Type octet) within s[..stop), checked:
-- its descriptor, type, length (nil for Pad1, which has none), the offset
-- after it, and what is wrong: `over` (the length runs past `stop`), a
-- misalignment (only when `base`, the Mobility Header's offset, is known),
-- a PadN with non-zero octets, and `bad`, any of these or a length not
-- allowed for the type or an unknown type. Shared by R.option, which shows
-- the option, and R.scan, which only looks for damage.
local function option_frame(s, pos, stop, base)
    local ty = byte(s, pos + 1)
    local d = opt_by_type[ty] or unknown_opt
    if ty == pad1_type then
        return d, ty, nil, pos + 1, false, false, false, false
    end
    if pos + 2 > stop then
        return d, ty, nil, stop, true, false, false, false
    end
    local len = byte(s, pos + 2)
    local dend = pos + 2 + len
    local over = dend > stop
    if over then
        dend = stop
    end
    local misaligned = base and d.ax and (pos - base) % d.ax ~= d.ay or false
    local padn_nonzero = false
    if ty == padn_type then
        local at = find(s, "[^%z]", pos + 3)
        padn_nonzero = at ~= nil and at <= dend
    end
    local bad = over or misaligned or padn_nonzero or d == unknown_opt
        or (d.length and len ~= d.length) or len < d.min
    return d, ty, len, dend, bad, over, misaligned, padn_nonzero
end

local option_values = {}

-- One option at `pos` (its Type octet); returns the offset after it.
-- ctx.base is the offset of the Mobility Header in `s` when alignment can be
-- checked (nil when Wireshark's own MIPv6 dissector hands over one option);
-- ctx.visible asks for summary lines; ctx collects the MN identifier.
-- Damage sets R.damaged, with a tree or without.
function R.option(tvb, s, tree, pos, stop, ctx)
    local F, E = R.F, R.E
    local vis = R.visible
    local d, ty, len, dend, bad, over, misaligned, padn_nonzero = option_frame(s, pos, stop, ctx.base)
    if ty == pad1_type then
        if tree then
            if vis then
                local it = tree_add(tree, d.field, tvb(pos, 1))
                tree_add(it, F.opt_type, tvb(pos, 1), ty, R.opt_type_label(ty))
            else
                tree_add(tree_add(tree, d.field), F.opt_type, ty)
            end
        end
        return dend
    end
    if bad then
        R.damaged = true
    end
    if len == nil then
        if tree then
            tree:add_tvb_expert_info(
                E.opt_no_length,
                tvb(pos, stop - pos),
                format("%s (type %d) has no Length octet", d.noun, ty)
            )
        end
        return stop
    end
    local it = nil
    if tree and not vis then
        it = tree_add(tree, d.field)
        tree_add(it, F.opt_type, ty)
        tree_add(it, F.opt_length, len)
    elseif tree then
        it = tree_add(tree, d.field, tvb(pos, dend - pos))
        tree_add(it, F.opt_type, tvb(pos, 1), ty, R.opt_type_label(ty))
        tree_add(it, F.opt_length, tvb(pos + 1, 1), len)
    end
    if it and bad then
        R.option_experts(tvb, s, it, pos, stop, d, ty, len, over, misaligned, padn_nonzero, ctx)
    end
    local wanted = d.key == R.C.mnid_key and ctx.mnid == nil
    if it or wanted then
        local v = emptied(option_values)
        d.dissect(tvb, s, it, pos + 2, dend, v)
        if it and ctx.visible then
            local raw = sub(s, pos + 1, dend)
            local text = option_summaries.texts[raw]
            if text == nil then
                text = d.summary(v)
                text = remember(option_summaries, raw, text ~= "" and ": " .. text or "")
            end
            if text ~= "" then
                append_text(it, text)
            end
        end
        if wanted then
            ctx.mnid = sub(s, pos + 3, dend)
        end
    end
    return dend
end

-- The expert items of one option (R.option found something wrong).
function R.option_experts(tvb, s, it, pos, stop, d, ty, len, over, misaligned, padn_nonzero, ctx)
    local E = R.E
    if over then
        it:add_tvb_expert_info(
            E.opt_overrun,
            tvb(pos + 1, 1),
            format(
                "%s length %d runs past the end of the Mobility Header (%d octets left)",
                d.noun,
                len,
                stop - pos - 2
            )
        )
    elseif d.length and len ~= d.length then
        it:add_tvb_expert_info(
            E.opt_bad_length,
            tvb(pos + 1, 1),
            format("%s has length %d, must be %d", d.noun, len, d.length)
        )
    elseif len < d.min then
        it:add_tvb_expert_info(
            E.opt_bad_length,
            tvb(pos + 1, 1),
            format("%s has length %d, at least %d needed", d.noun, len, d.min)
        )
    end
    if misaligned then
        it:add_tvb_expert_info(
            E.opt_misaligned,
            tvb(pos, 1),
            format(
                "%s starts at offset %d, not aligned %dn+%d",
                d.noun,
                pos - ctx.base,
                d.ax,
                d.ay
            )
        )
    end
    if d == R.unknown_opt then
        it:add_tvb_expert_info(E.opt_unknown, tvb(pos, 1), format("Unknown mobility option type %d, skipped", ty))
    end
    if padn_nonzero then
        local dend = pos + 2 + len
        if dend > stop then
            dend = stop
        end
        it:add_tvb_expert_info(E.padn_nonzero, tvb(pos + 2, dend - pos - 2), "PadN option carries non-zero octets")
    end
end

function R.options(tvb, s, tree, pos, stop, ctx)
    while pos < stop do
        pos = R.option(tvb, s, tree, pos, stop, ctx)
    end
    return pos
end

-- Where the last option wholly in s[pos, stop) ends (0-based): the capture that cut
-- the message cut the option after it, which is not there to decode.
local function whole_options_end(s, pos, stop)
    while pos < stop do
        local step = 1
        if byte(s, pos + 1) ~= pad1_type then
            if pos + 2 > stop then
                break
            end
            step = 2 + byte(s, pos + 2)
        end
        if pos + step > stop then
            break
        end
        pos = pos + step
    end
    return pos
end

-- A message the capture cut (its snapshot length): Wireshark's words for it, on the
-- octets that are there, and how many are not. Not an error: the packet was whole.
local function snapshot_limited(tvb, t, cap, uncaptured)
    if R.visible then
        set_generated(tree_add(t, R.F.uncaptured, tvb(0, cap), uncaptured))
    else
        tree_add(t, R.F.uncaptured, uncaptured)
    end
    t:add_proto_expert_info(
        R.E.snapshot,
        format(
            "Packet size limited during capture: %d of the %d octets of the Mobility Header captured",
            cap,
            cap + uncaptured
        )
    )
end

-- --- checksum ------------------------------------------------------------------

-- The sum of an address's eight 16-bit words, kept in the words table
-- (R.address_words returns the same table for every packet of an address).
local function words_sum(words)
    local sum = words.sum
    if sum == nil then
        sum = 0
        for k = 1, 8 do
            sum = sum + words[k]
        end
        words.sum = sum
    end
    return sum
end

-- The Internet checksum of s[1..n] (the checksum field, 1-based `skip` and
-- skip+1, counted as zero) under an IPv6 pseudo-header of 8-word addresses.
-- Octets at odd positions are the high halves of the 16-bit words, even ones
-- the low halves: the two are summed apart and put together once. The calls
-- and the VM's operations, not the additions, are the cost, so string.byte
-- takes 32 octets a call, then 8, then 2 (machine instructions for 56 / 80
-- octets: 14.8k / 19.3k eight at a time, 12.3k / 13.9k so).
function R.checksum(s, n, skip, src, dst, next_header)
    local hi, lo = 0, 0
    local i = 1
    while i + 31 <= n do
        local a1, b1, a2, b2, a3, b3, a4, b4, a5, b5, a6, b6, a7, b7, a8, b8,
            a9, b9, a10, b10, a11, b11, a12, b12, a13, b13, a14, b14, a15, b15, a16, b16 = byte(s, i, i + 31)
        hi = hi + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11 + a12 + a13 + a14 + a15 + a16
        lo = lo + b1 + b2 + b3 + b4 + b5 + b6 + b7 + b8 + b9 + b10 + b11 + b12 + b13 + b14 + b15 + b16
        i = i + 32
    end
    while i + 7 <= n do
        local a1, b1, a2, b2, a3, b3, a4, b4 = byte(s, i, i + 7)
        hi, lo = hi + a1 + a2 + a3 + a4, lo + b1 + b2 + b3 + b4
        i = i + 8
    end
    while i < n do
        local a, b = byte(s, i, i + 1)
        hi, lo = hi + a, lo + b
        i = i + 2
    end
    if i == n then
        hi = hi + byte(s, n)
    end
    -- The checksum field itself counts as zero.
    local a, b = byte(s, skip, skip + 1)
    local sum = (hi - a) * 256 + lo - b + floor(n / 65536) + n % 65536 + next_header
    sum = sum + words_sum(src) + words_sum(dst)
    while sum > 65535 do
        sum = sum % 65536 + floor(sum / 65536)
    end
    return 65535 - sum
end

-- The eight words of an IPv6 Address object whose text is a name (network
-- name resolution is on). Lua has no accessor for an Address's octets, but
-- Addresses compare by them (Wireshark's cmp_address: type, length, then the
-- octets in order), so each word is found by bisection against numeric
-- Address objects: 128 comparisons, once per name. nil for anything else.
local function words_by_order(address)
    local words = { 0, 0, 0, 0, 0, 0, 0, 0 }
    local function numeric()
        return Address.ipv6(format("%x:%x:%x:%x:%x:%x:%x:%x", table.unpack(words)))
    end
    for i = 1, 8 do
        local lo, hi = 0, 65535
        while lo < hi do
            local mid = floor((lo + hi + 1) / 2)
            words[i] = mid
            if numeric() <= address then
                lo = mid
            else
                hi = mid - 1
            end
        end
        words[i] = lo
    end
    if numeric() ~= address then
        return nil
    end
    return words
end

-- A capture has few addresses and many packets: convert each once, by its
-- text (an Address object's tostring, or plain text when `address` is nil).
local address_cache, address_count = {}, 0

function R.address_words(text, address)
    local words = address_cache[text]
    if words == nil then
        words = R.parse_ipv6(text)
        if words == nil and address ~= nil then
            local ok, by_order = pcall(words_by_order, address)
            words = ok and by_order or nil
        end
        words = words or false
        if address_count > 10000 then
            emptied(address_cache)
            address_count = 0
        end
        address_cache[text] = words
        address_count = address_count + 1
    end
    return words or nil
end

-- Verify the checksum: 1 (good), 0 (bad) or 2 (unverified: not all
-- captured, or an address not known), and the checksum it should have.
function R.checksum_status(s, pinfo, total)
    local C = R.C
    if #s < total then
        return 2, nil
    end
    -- The pseudo-header's addresses (RFC 6275 6.1.1, after RFC 8200 8.1, and
    -- 6.3): Wireshark's IPv6 dissector leaves in pinfo the innermost header's,
    -- with a Home Address option's as the source and a type 2 routing
    -- header's as the destination.
    local src_address, dst_address = pinfo_src(pinfo), pinfo_dst(pinfo)
    local src = R.address_words(tostring(src_address), src_address)
    local dst = R.address_words(tostring(dst_address), dst_address)
    if not src or not dst then
        return 2, nil
    end
    local want = R.checksum(s, total, C.checksum_offset + 1, src, dst, C.next_header)
    return want == R.u16(s, C.checksum_offset) and 1 or 0, want
end

-- Verify and show: the status and calculated checksum as items when `items`
-- (a tree is built), and a bad checksum as an expert item on `t` either way
-- (`t` is then the root that wraps no item: Wireshark still records it).
function R.verify_checksum(tvb, s, t, pinfo, total, items)
    local F = R.F
    local at = R.C.checksum_offset
    local status, want = R.checksum_status(s, pinfo, total)
    local it = t
    if items and R.visible then
        -- Both items cover the Checksum field: one TvbRange for the two.
        local field = tvb(at, 2)
        if want then
            set_generated(tree_add(t, F.checksum_calculated, field, want))
        end
        it = tree_add(t, F.checksum_status, field, status)
        set_generated(it)
    elseif items then
        if want then
            tree_add(t, F.checksum_calculated, want)
        end
        it = tree_add(t, F.checksum_status, status)
    end
    if status == 0 then
        it:add_proto_expert_info(
            R.E.checksum_bad,
            format("Bad checksum 0x%04x, should be 0x%04x", R.u16(s, at), want)
        )
    end
end

-- --- request/response and handover tracking ------------------------------------------

-- The tracking keeps numbers in arrays, not tables or strings per frame,
-- exchange or handover: Lua's garbage collector marks every live object at
-- every cycle, and cycles come at a pace set by the dissection's garbage, so
-- an object kept per packet costs again and again over a capture (a table
-- per frame made tracking most of the dissector's cost). Only each MN
-- identifier is kept as a string, mapped to a number.
--
-- Per frame number, filled in for every tracked frame so that they stay dense:
--   times[f]     the frame's time (rel_ts of the first pass);
--   exchange[f]  of a request: the frame of its first response, or 0 while
--                unanswered; of a response: minus the request's frame; false
--                for a repeated request and a response to no request;
--   handover[f]  the number of the handover the frame belongs to (nil when none).
-- Per handover number k (dense): ho_start[k] (frame), ho_seq[k], ho_open[k],
-- ho_answered[k], ho_end[k] (the frame that ended it, or false),
-- ho_success[k]. Per MN number: ho_of[m], its latest handover.
-- Hashes: retransmission_of (frame -> frame, rare); and, in two generations
-- (see `generations`), requests (pairing key -> request frame), registered
-- (request frame of a PBU -> handover), mn_numbers (MN identifier -> MN
-- number) and ho_of (MN number -> its latest handover).
-- Everything shown (response in/to, times, durations) is worked out from these
-- when a tree is shown; the first pass, which has no tree, only records.
-- A message's part in a handover (d.ho_role, set by R.apply_prefs).
local HO_OPENS, HO_ANSWERS, HO_REGISTERS, HO_COMPLETES = 1, 2, 3, 4

-- The pairing state only matters while an exchange or an MN is active, yet
-- kept for every one it grew with the capture (a third of the live data at
-- 50,000 packets, and 6,000 MN strings): each such map keeps two
-- generations, a new one that takes at most GENERATION entries and the one
-- before; when the new one is full it becomes the old one and the old one is
-- dropped. So a response pairs with a request at most 1,024 to 2,048 newer
-- requests back, and an MN unseen for as many new MNs starts afresh. Every
-- live object is marked at every collection, and Lua lets the heap grow to
-- twice the live data before the next one.
local GENERATION = 1024

local function generations()
    return { new = {}, old = {}, count = 0 }
end

local function generation_get(g, key)
    local value = g.new[key]
    if value == nil then
        value = g.old[key]
    end
    return value
end

-- Also refreshes an entry found in the old generation.
local function generation_set(g, key, value)
    local new = g.new
    if new[key] == nil then
        if g.count >= GENERATION then
            g.old, new, g.count = new, emptied(g.old), 0
            g.new = new
        end
        g.count = g.count + 1
    end
    new[key] = value
end

-- The tables of R.tr, also in locals: the per-packet paths use them.
local tr_times, tr_exchange, tr_handover, tr_retx, tr_registered, tr_requests
local tr_mn_numbers, tr_ho_of, ho_start, ho_seq, ho_open, ho_answered, ho_end, ho_success
local n_mns, n_handovers = 0, 0
-- R.C.seq_span + 1 and R.C.success_below, set by R.apply_prefs.
local seq_span, success_below

function R.reset()
    local tr = {
        times = {},
        exchange = {},
        handover = {},
        retransmission_of = {},
        registered = generations(),
        requests = generations(),
        -- MN identifier (raw option data) -> MN number; none (or "") is 0.
        mn_numbers = generations(),
        ho_of = generations(),
        ho_start = {},
        ho_seq = {},
        ho_open = {},
        ho_answered = {},
        ho_end = {},
        ho_success = {},
    }
    R.tr = tr
    tr_times, tr_exchange, tr_handover = tr.times, tr.exchange, tr.handover
    tr_retx, tr_registered, tr_requests = tr.retransmission_of, tr.registered, tr.requests
    tr_mn_numbers, tr_ho_of = tr.mn_numbers, tr.ho_of
    n_mns, n_handovers = 0, 0
    ho_start, ho_seq, ho_open, ho_answered = tr.ho_start, tr.ho_seq, tr.ho_open, tr.ho_answered
    ho_end, ho_success = tr.ho_end, tr.ho_success
end
R.reset()

-- What one frame is to the others, worked out on the first pass (the only
-- one where frames come in order); `tracked` skips frames already seen
-- (R.tr.times[num] set). `now` is the frame's time, `d` the message
-- descriptor, `seq` and `status` its Sequence Number and Status (nil when
-- absent), `mnid` the raw MN identifier option data (nil when absent).
-- Requests and responses pair by message, Sequence Number and MN identifier
-- (docs/wire-format.md 3), the way a PBA answers its PBU.
local function track(num, now, d, seq, status, mnid)
    tr_times[num] = now
    local mn = 0
    if mnid and mnid ~= "" then
        mn = tr_mn_numbers.new[mnid]
        if mn == nil then
            -- Not seen lately: from the old generation, or a new MN number.
            mn = tr_mn_numbers.old[mnid]
            if mn == nil then
                n_mns = n_mns + 1
                mn = n_mns
            end
            generation_set(tr_mn_numbers, mnid, mn)
        end
    end
    local key = (mn * seq_span + (seq or -1) + 1) * 512 + d.pair_index
    local success = true
    local req = generation_get(tr_requests, key)
    local state = false
    if d.is_response then
        success = status == nil or status < success_below
        if req then
            state = -req
            local first = tr_exchange[req]
            if first ~= 0 then
                tr_retx[num] = first
            else
                tr_exchange[req] = num
            end
        end
    elseif req and tr_exchange[req] == 0 then
        tr_retx[num] = req
    else
        -- A request after the answer is a new exchange (sequence numbers wrap).
        req = num
        generation_set(tr_requests, key, num)
        state = 0
    end
    tr_exchange[num] = state
    if mnid == nil then
        return
    end
    -- The handover of this MN (draft section 4.2): opened by its first
    -- request, answered, registered by a PBU, completed by the PBA.
    local h = generation_get(tr_ho_of, mn)
    local role = d.ho_role
    if role == HO_OPENS and not (h and ho_open[h] and ho_seq[h] == (seq or -1)) then
        n_handovers = n_handovers + 1
        h = n_handovers
        ho_start[h], ho_seq[h], ho_open[h], ho_answered[h] = num, seq or -1, true, false
        ho_end[h], ho_success[h] = false, false
    end
    if not (h and ho_open[h]) then
        return
    end
    if tr_ho_of.new[mn] ~= h then
        generation_set(tr_ho_of, mn, h)
    end
    if role == HO_REGISTERS then
        if not ho_answered[h] then
            return
        end
        if req then
            generation_set(tr_registered, req, h)
        end
    elseif role == HO_COMPLETES and not (req and generation_get(tr_registered, req) == h) then
        return
    end
    tr_handover[num] = h
    local ends = role == HO_COMPLETES
    if role == HO_ANSWERS then
        ho_answered[h] = success
        ends = not success
    end
    if ends then
        ho_open[h] = false
        ho_end[h] = num
        ho_success[h] = success
    end
end

R.track = track

-- The frame's number, tracked by the first pass that sees it (the only one
-- where frames come in order; later passes find tr_times[num] set).
local function tracked(pinfo, d, seq, status, mnid)
    local num = pinfo_number(pinfo)
    if tr_times[num] == nil then
        -- rel_ts, not abs_ts: small values keep nanoseconds in a double.
        track(num, pinfo_rel_ts(pinfo), d, seq, status, mnid)
    end
    return num
end

-- The tracking of frame `num` as items under `t` when `items` (a tree is
-- built), and its expert items on them or, without, on `t` itself.
function R.show_tracking(t, num, items)
    local F, E = R.F, R.E
    local now = tr_times[num]
    if now == nil then
        return
    end
    local x = tr_exchange[num]
    if items and x and x > 0 then
        set_generated(tree_add(t, F.response_in, x))
    elseif items and x and x < 0 then
        set_generated(tree_add(t, F.response_to, -x))
        set_generated(tree_add(t, F.time, R.delta(now - tr_times[-x])))
    end
    x = tr_retx[num]
    if x then
        local it = t
        if items then
            it = tree_add(t, F.retransmission_of, x)
            set_generated(it)
        end
        it:add_proto_expert_info(E.retransmission, format("Retransmission of frame %d", x))
    end
    local h = tr_handover[num]
    if not h then
        return
    end
    local start = ho_start[h]
    local elapsed = now - tr_times[start]
    if items and start ~= num then
        set_generated(tree_add(t, F.handover_start, start))
        set_generated(tree_add(t, F.handover_elapsed, R.delta(elapsed)))
    end
    if ho_end[h] == num then
        local it = t
        local ok = ho_success[h]
        if items then
            it = tree_add(t, F.handover_duration, R.delta(elapsed))
            set_generated(it)
            set_generated(tree_add(t, F.handover_success, ok))
        end
        if ok then
            it:add_proto_expert_info(
                E.ho_completed,
                format("Handover completed in %s", R.seconds(elapsed))
            )
        else
            it:add_proto_expert_info(E.ho_failed, format("Handover failed after %s", R.seconds(elapsed)))
        end
    end
end

-- Decimal digits of 0..999, and the same zero-padded to three: the Info
-- column's sequence numbers are put together from these rather than
-- formatted, because string.format (sprintf per directive) was a sixth of
-- the tree-less path. 2,000 constant strings; one per sequence number would
-- be tens of thousands of live objects for the collector to mark.
local DIGITS, DIGITS3 = {}, {}
for x = 0, 999 do
    DIGITS[x] = tostring(x)
    DIGITS3[x] = format("%03d", x)
end

-- " Status=ACCEPTED" for message `d`, cached in the descriptor.
function R.status_text(d, status)
    if status == nil or not d.status_vs then
        return ""
    end
    local cache = d.status_texts
    local text = cache[status]
    if text == nil then
        text = " Status=" .. R.enum(d.status_vs, status)
        cache[status] = text
    end
    return text
end

-- "LMA Handover Response (LMA_HO_Resp) Seq=9 Status=ACCEPTED MN-ID=mn1@example",
-- built in one concatenation from cached parts: the Info column is set for
-- every packet. `status_text` and `mnid_text` are the " Status=..." and
-- " MN-ID=..." parts ("" when absent).
local function info_line(d, seq, status_text, mnid_text, num)
    local retx = tr_retx[num] and " [Retransmission]" or ""
    if seq == nil then
        return d.label .. status_text .. mnid_text .. retx
    end
    local lo = seq % 1000
    if seq < 1000 then
        return d.label .. " Seq=" .. DIGITS[lo] .. status_text .. mnid_text .. retx
    end
    local hi = (seq - lo) / 1000
    local high = DIGITS[hi] or format("%d", hi)
    return d.label .. " Seq=" .. high .. DIGITS3[lo] .. status_text .. mnid_text .. retx
end

R.info_line = info_line

-- " MN-ID=mn1@example" of raw MN identifier option data, as the option's own
-- summary shows its identifier; cached for the MNs of the moment (a small
-- cache: every live string is marked again at every garbage collection).
local mnid_texts, mnid_count = {}, 0

function R.mnid_text(raw)
    local text = mnid_texts[raw]
    if text == nil then
        local d = R.opt_by_type[R.mnid_type]
        local v = {}
        d.dissect(nil, raw, nil, 0, #raw, v)
        local x = d.info(v)
        text = x and (" MN-ID=" .. x) or false
        if mnid_count >= 256 then
            emptied(mnid_texts)
            mnid_count = 0
        end
        mnid_texts[raw] = text
        mnid_count = mnid_count + 1
    end
    return text or nil
end

-- --- the Mobility Header ----------------------------------------------------------

-- Wireshark's MIPv6 dissector throws on a packet too short for it; Lua's
-- Dissector:call has then already shown that as Wireshark's own "Malformed
-- Packet" item (as without lmaho) and turns the exception into a Lua error,
-- which is swallowed here so that it does not also show as a Lua error.
--
-- Except a packet the capture cut: Wireshark's MIPv6 dissector throws
-- BoundsError for it, which neither Dissector:call nor pcall catches;
-- unwinding past Lua leaves Lua's count of C calls raised, and some 200 such
-- packets later every call of every Lua dissector fails ("C stack overflow"
-- in a tree, nothing at all in the columns). lmaho shows that packet instead.
function R.call_mip6(tvb, pinfo, root)
    if tvb:len() < tvb:reported_len() then
        return R.cut_foreign(tvb, pinfo, root)
    end
    local ok, len = pcall(dissector_call, R.mip6, tvb, pinfo, root)
    if ok then
        return len
    end
    return tvb:len()
end

-- Whether a message delegated to Wireshark's MIPv6 dissector is its proxy
-- variant (PBU/PBA), from its flags word.
function R.is_proxy(d, flags)
    if not d.proxy_mask then
        return true
    end
    if flags == nil then
        return false
    end
    if d.proxy_bit then
        return floor(flags / d.proxy_mask) % 2 == 1
    end
    return R.band(flags, d.proxy_mask) ~= 0
end

-- Header, fixed part and options of message `d`, shown under `t` when it is
-- a tree. Returns the header values, the fixed-part values and the length
-- Header Len gives, or nil when not even the header is there.
local header_values, message_values = {}, {}

function R.decode(d, tvb, s, t, cap, ctx)
    local C, E, F = R.C, R.E, R.F
    local hv = emptied(header_values)
    if cap < C.header_size and tvb:reported_len() >= C.header_size then
        -- The capture kept less than the header: nothing to decode, nothing wrong.
        ctx.uncaptured = tvb:reported_len() - cap
        if t then
            snapshot_limited(tvb, t, cap, ctx.uncaptured)
        end
        return nil
    end
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
    if total > cap and tvb:reported_len() >= total then
        -- Cut by the capture, not by a lying Header Len: shown as far as it was kept.
        stop = cap
        ctx.uncaptured = total - cap
        if t then
            snapshot_limited(tvb, t, cap, total - cap)
        end
    elseif total > cap then
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
        if R.visible then
            set_len(t, stop)
        end
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
    if ctx.uncaptured then
        if fixed_end > stop then
            return hv, emptied(message_values), total -- the message data was not kept
        end
        stop = whole_options_end(s, fixed_end, stop)
    end
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
    if t and R.visible then
        mt = tree_add(t, d.field, tvb(pos, fstop - pos))
    elseif t then
        mt = tree_add(t, d.field)
    end
    local v = emptied(message_values)
    d.dissect(tvb, s, mt, pos, fstop, v)
    if fixed_end < stop then
        local ot = nil
        if t and R.visible then
            ot = tree_add(t, F.options, tvb(fixed_end, stop - fixed_end))
        elseif t then
            ot = tree_add(t, F.options)
        end
        ctx.base = 0
        R.options(tvb, s, ot, fixed_end, stop, ctx)
    end
    return hv, v, total
end

-- Whether message `d` in s (cap octets, all of header and fixed part there:
-- d.fast said so) has anything an expert item would report, found without a
-- tree: a Header Len that disagrees with the packet, a Payload Proto other
-- than 59, or damage in the options (R.option's checks, and the fields of
-- options of no fixed length). R.decode over a tree says what it is.
local scan_values = {}

function R.scan(d, s, cap)
    local C = R.C
    local total = C.header_size + R.msg_len_of(byte(s, C.header_len_offset + 1))
    if total ~= cap or byte(s, 1) ~= C.no_next_header then
        return true
    end
    local pos = C.header_size + d.length
    while pos < total do
        local od, _, len, dend, bad = option_frame(s, pos, total, 0)
        if bad then
            return true
        end
        if len and not od.fits then
            -- Its fields can be short, or leave octets over (d.fits: they cannot).
            R.damaged = false
            od.dissect(nil, s, nil, pos + 2, dend, scan_values)
            if R.damaged then
                return true
            end
        end
        pos = dend
    end
    return false
end

-- Numbers the per-packet paths use, in locals (set by R.apply_prefs).
local type_pos, pad1, mnid_type, msg_by_type

-- The raw data of the first MN identifier option among the options at
-- s[pos..stop) (0-based offsets), or nil: the walk of the tree-less paths,
-- which read a message with its descriptor's d.fast (generated: the
-- offsets of its sequence, status and flags are known).
function R.find_mnid(s, pos, stop)
    while pos + 1 < stop do
        local ty, len = byte(s, pos + 1, pos + 2)
        if ty == pad1 then
            pos = pos + 1
        else
            local dend = pos + 2 + len
            if dend > stop then
                return nil
            end
            if ty == mnid_type then
                return sub(s, pos + 3, dend)
            end
            pos = dend
        end
    end
    return nil
end

-- The checksum, the Status and the tracking of a message under `t`: as
-- items and expert items when `items`; else (no tree: `t` is the root, which
-- wraps no item) only the expert items, which Wireshark records all the
-- same for `tshark -z expert` and the Expert Information dialog.
local function conclude(d, tvb, pinfo, t, s, total, num, status, items)
    if R.verify then
        R.verify_checksum(tvb, s, t, pinfo, total, items)
    end
    if not d.delegated and d.is_response and status and status >= success_below then
        t:add_proto_expert_info(
            R.E.status_failure,
            format("%s status %s: failure", d.name, R.enum(d.status_vs or {}, status))
        )
    end
    R.show_tracking(t, num, items)
end

-- The length Header Len gives.
local function mh_total(s)
    local C = R.C
    return C.header_size + R.msg_len_of(byte(s, C.header_len_offset + 1))
end

-- A PBU/PBA (or any message lmaho leaves to Wireshark's MIPv6 dissector):
-- Wireshark's own tree first, untouched; lmaho adds its tracking only for the
-- proxy variant, never to plain MIPv6.
local delegated_tree

local function delegated(d, tvb, pinfo, root, s, cap)
    R.call_mip6(tvb, pinfo, root)
    local ok, seq, status, flags, mnid = d.fast(s, cap)
    if not ok or not R.is_proxy(d, flags) then
        return cap
    end
    local num = tracked(pinfo, d, seq, status, mnid)
    if item_text(root) == nil then
        conclude(d, tvb, pinfo, root, s, mh_total(s), num, status, false)
        return cap
    end
    return R.protected(delegated_tree, d, tvb, pinfo, root, s, cap, num)
end

-- What lmaho adds to a PBU/PBA's tree: checksum and tracking (and with the
-- show_pmip preference, its own decoding).
function delegated_tree(d, tvb, pinfo, root, s, cap, num)
    local t = tree_add(root, R.proto, tvb(0, cap))
    R.visible = item_visible(root)
    if R.visible then
        append_text(t, d.proxy_suffix)
    end
    local total = mh_total(s)
    local status = nil
    if R.show_pmip then
        local _, v = R.decode(d, tvb, s, t, cap, decode_context(R.visible))
        status = v and v[R.C.status]
    elseif R.visible then
        set_len(t, math.min(total, cap))
    end
    conclude(d, tvb, pinfo, t, s, total, num, status, true)
    return cap
end

-- The tree path: every field, the checksum and the tracking shown. Also run
-- over the root that wraps no item, when there is no tree but the message
-- is damaged: its expert items are recorded all the same.
local function dissect_tree(d, tvb, pinfo, root, s, cap)
    local C = R.C
    local t = tree_add(root, R.proto, tvb(0, cap))
    R.visible = item_visible(root)
    local ctx = decode_context(R.visible)
    local hv, v, total = R.decode(d, tvb, s, t, cap, ctx)
    if not hv then
        if ctx.uncaptured then
            pinfo_cols(pinfo).info = d.label .. " [Packet size limited during capture]"
        else
            pinfo_cols(pinfo).info = d.malformed_info
        end
        return cap
    end
    local seq, status = v[C.sequence], v[C.status]
    local num = tracked(pinfo, d, seq, status, ctx.mnid)
    local mnid_text = ctx.mnid and R.mnid_text(ctx.mnid) or ""
    local info = info_line(d, seq, R.status_text(d, status), mnid_text, num)
    if ctx.uncaptured then
        info = info .. " [Packet size limited during capture]"
    end
    pinfo_cols(pinfo).info = info
    if R.visible then
        append_text(t, d.name_suffix)
    end
    conclude(d, tvb, pinfo, t, s, total, num, status, true)
    return cap
end

-- A cut Mobility Header of a type lmaho does not own (see R.call_mip6).
function R.cut_foreign(tvb, pinfo, root)
    local s = tvb_raw(tvb)
    local cap = #s
    local t = tree_add(root, R.proto, tvb(0, cap))
    R.visible = item_visible(root)
    if cap >= R.C.header_size then
        R.header(tvb, s, t, 0, cap, emptied(header_values))
    end
    snapshot_limited(tvb, t, cap, tvb:reported_len() - cap)
    local cols = pinfo_cols(pinfo)
    cols.protocol = "MIPv6"
    local what = "Mobility Header"
    if cap >= type_pos then
        what = format("Mobility Header type %d", byte(s, type_pos))
    end
    cols.info = what .. " [Packet size limited during capture]"
    return cap
end

-- The dissector. Without a tree (tshark printing summaries only, Wireshark's
-- first pass) `root` wraps no item, and only the columns, the tracking and
-- the expert items are worked out: that path must cost little, so it makes
-- no tree items, reads only what it needs and builds the Info column in one
-- concatenation; a damaged message (d.fast or R.scan say so, rare) goes the
-- tree path over `root`, whose items cost nothing but whose expert items
-- Wireshark records. It also runs outside pcall (R.protected), which cost
-- about 0.4 us a packet, a sixth of what lmaho adds there: the code it runs
-- (the generated d.fast readers, R.find_mnid, R.scan, track, R.mnid_text,
-- the checksum) only indexes the string within the bounds it has checked
-- and does arithmetic on what it read, so malformed input cannot make it
-- fail (tests/test_dissector_malformed.py reads the damaged captures without
-- a tree too). Everything that builds a tree, and the hand-off to
-- Wireshark's MIPv6 dissector, runs protected.
function R.dissect(tvb, pinfo, root)
    if pinfo_number == nil then
        bind_api(pinfo, root)
    end
    local s = tvb_raw(tvb)
    local cap = #s
    if cap < type_pos then
        return R.call_mip6(tvb, pinfo, root)
    end
    local d = msg_by_type[byte(s, type_pos)]
    if d == nil then
        return R.call_mip6(tvb, pinfo, root)
    end
    if d.delegated then
        if mh_total(s) > cap and cap < tvb:reported_len() then
            -- Cut: not for Wireshark's MIPv6 dissector (see R.call_mip6); lmaho's own.
            pinfo_cols(pinfo).protocol = d.column
            return R.protected(dissect_tree, d, tvb, pinfo, root, s, cap)
        end
        return delegated(d, tvb, pinfo, root, s, cap)
    end
    local cols = pinfo_cols(pinfo)
    cols.protocol = d.column
    if item_text(root) ~= nil then
        return R.protected(dissect_tree, d, tvb, pinfo, root, s, cap)
    end
    local ok, seq, status, _, mnid = d.fast(s, cap)
    if not ok or R.scan(d, s, cap) then
        return R.protected(dissect_tree, d, tvb, pinfo, root, s, cap)
    end
    local num = tracked(pinfo, d, seq, status, mnid)
    local status_text = ""
    if status then
        status_text = d.status_texts[status] or R.status_text(d, status)
    end
    local mnid_text = ""
    if mnid then
        mnid_text = mnid_texts[mnid] or R.mnid_text(mnid) or ""
    end
    cols.info = info_line(d, seq, status_text, mnid_text, num)
    conclude(d, tvb, pinfo, root, s, cap, num, status, false)
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
    R.visible = tree.visible
    R.option(tvb, s, tree, 0, cap, decode_context(R.visible))
    return cap
end

-- Last guard only: the dissector bounds-checks everything itself, but a bug
-- must show as an expert item, never as a Lua error that stops the tree.
function R.protected(fn, d, tvb, pinfo, root, s, cap, num)
    local ok, res = pcall(fn, d, tvb, pinfo, root, s, cap, num)
    if ok then
        return res
    end
    root:add_proto_expert_info(R.E.internal, "lmaho dissector error: " .. tostring(res))
    return cap
end

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
    local pair_index = {}
    for i, d in ipairs(R.MSG) do
        pair_index[d.key] = i
    end
    for _, d in ipairs(R.MSG) do
        d.pair_index = pair_index[d.pair] or 0
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
        d.malformed_info = d.label .. " [Malformed]"
        d.column = R.C.column
        d.name_suffix = ", " .. d.name
        d.proxy_suffix = ", " .. (d.proxy_name or d.name)
        d.is_response = d.role == "response"
        d.status_texts = {}
        local role = nil
        if d.key == R.C.ho_start then
            role = HO_OPENS
        elseif d.is_response and d.pair == R.C.ho_start then
            role = HO_ANSWERS
        elseif d.key == R.C.ho_register then
            role = HO_REGISTERS
        elseif d.key == R.C.ho_complete then
            role = HO_COMPLETES
        end
        d.ho_role = role
        if d.proxy_mask then
            local m = d.proxy_mask
            while m > 1 and m % 2 == 0 do
                m = m / 2
            end
            d.proxy_bit = m == 1
        end
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
        if d.type == R.C.padn then
            padn_type = t
        end
        if d.key == R.C.mnid_key then
            R.mnid_type = t
        end
        opt_by[t] = d
        opt_names[t] = d.title
    end
    R.opt_by_type, R.opt_names = opt_by, opt_names
    opt_by_type, unknown_opt, pad1_type = opt_by, R.unknown_opt, R.C.pad1
    local C = R.C
    type_pos, pad1, mnid_type, msg_by_type = C.type_offset + 1, C.pad1, R.mnid_type, R.msg_by_type
    seq_span, success_below = C.seq_span + 1, C.success_below
    opt_type_labels = {}
    forget_texts()
    R.verify = prefs.verify_checksum
    R.show_pmip = prefs.show_pmip
end
