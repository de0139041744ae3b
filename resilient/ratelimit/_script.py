"""What a Redis decision runs and stores: the GCRA Lua script, its SHA1, and the name a key
gets in Redis. The client that sends it is ``_redis.py``."""

from __future__ import annotations

import hashlib

from resilient.ratelimit._resp import script_sha

__all__ = ["GCRA_SCRIPT", "MAX_EXACT_US", "SCRIPT_SHA", "stored_key"]

MAX_EXACT_US = 2**52
"""Every integer the script computes stays below 2^53, where Lua's doubles are exact."""


GCRA_SCRIPT = """\
-- GCRA for one key in integer microseconds: a mirror of resilient/ratelimit/_gcra.py.
-- KEYS[1]: the key holding the theoretical arrival time (TAT).
-- ARGV: emission_us, tolerance_us, cost, ttl_margin_ms[, now_us (else the server's TIME)].
-- Returns {allowed (1/0), remaining, retry_after_us (-1: never), reset_after_us}.
-- Lua numbers are doubles: every value stays below 2^53 (exact), and floor_div equals //.
-- A stored value that is not a TAT (corrupted, or written by someone else) counts as absent,
-- and is overwritten by the next allowed request: one bad key never fails anything.
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local margin_ms = tonumber(ARGV[4])
local now
if ARGV[5] then
  now = tonumber(ARGV[5])
else
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end
local function floor_div(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then
  local stored_tat = tonumber(stored)
  if stored_tat and stored_tat == math.floor(stored_tat) and stored_tat >= 0
      and stored_tat < 4503599627370496 and stored_tat > now then
    tat = stored_tat
  end
end
local increment = emission * cost
local new_tat = tat + increment
local allow_at = new_tat - tolerance - emission
if allow_at <= now then
  local reset_after = new_tat - now
  if cost > 0 then
    local ttl_ms = floor_div(reset_after + 999, 1000) + margin_ms
    redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl_ms)
  end
  return {1, floor_div(now - allow_at, emission), 0, reset_after}
end
local remaining = floor_div(now - (tat - tolerance - emission), emission)
if remaining < 0 then
  remaining = 0
end
if increment - emission > tolerance then
  return {0, remaining, -1, tat - now}
end
return {0, remaining, allow_at - now, tat - now}
"""
"""The Lua script of every decision (see the module docstring for its arguments)."""

SCRIPT_SHA = script_sha(GCRA_SCRIPT)


_INLINE_KEY_BYTES = 64
"""Keys of up to this many bytes (UTF-8) are stored as they are after the prefix; longer ones
as ``~`` and the hex of their 16-byte BLAKE2b digest, so a client's key costs Redis at most
``len(prefix) + 64`` bytes of key name whatever its length."""


def stored_key(key: str) -> bytes:
    """The key's name in Redis after the prefix. Every str has one (lone surrogates included:
    ``surrogatepass`` encodes every str, distinct strs to distinct bytes)."""
    encoded = key.encode("utf-8", "surrogatepass")
    if len(encoded) <= _INLINE_KEY_BYTES:
        return encoded
    return b"~" + hashlib.blake2b(encoded, digest_size=16).hexdigest().encode()
