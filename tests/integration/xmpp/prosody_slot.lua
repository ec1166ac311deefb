-- prosody_slot.lua: an upload slot minted by Prosody's own
-- mod_http_upload_external code, without an XMPP session.
--
--   lua5.4 prosody_slot.lua SECRET PROTOCOL '<iq …><request …/></iq>'
--
-- Loads the module file with a stub `module` API, parses the request with
-- Prosody's util.xml (as it arrives from the wire, so content-type="" is an
-- attribute present and empty), fires the module's hook for the request's
-- namespace and prints the PUT URL it answers. Used by
-- test_defects_upload.py to check the daemon against the exact MAC input
-- the real signer builds.
package.path = "/usr/lib/prosody/?.lua;" .. package.path
package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath
local xml = require "util.xml"

local secret, protocol, request = arg[1], arg[2], arg[3]
local opts = {
    http_upload_external_base_url = "http://upload.invalid/",
    http_upload_external_secret = secret,
    http_upload_external_protocol = protocol,
}
local hooks = {}
local function noop() end
module = {
    name = "http_upload_external",
    get_option_number = function(_, k, d) return opts[k] or d end,
    get_option_string = function(_, k, d) return opts[k] or d end,
    get_option_set = function()
        return { contains = function() return false end }
    end,
    depends = noop, add_identity = noop, add_feature = noop,
    add_extension = noop, log = noop,
    hook = function(_, name, fn) hooks[name] = fn end,
}
assert(loadfile("/usr/lib/prosody/modules/mod_http_upload_external/"
                .. "mod_http_upload_external.lua"))()

local iq = assert(xml.parse(request))
iq.attr.from = iq.attr.from or "alice@example.org/res"
local ns = iq.tags[1].attr.xmlns
local reply
hooks["iq/host/" .. ns .. ":request"]({
    stanza = iq,
    origin = { type = "c2s", username = "alice", host = "example.org",
               send = function(s) reply = s end },
})
local slot = assert(reply:get_child("slot", ns), tostring(reply))
local put = slot:get_child("put")
print(put.attr.url or put:get_text())
