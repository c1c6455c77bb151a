// The Lua scripts of the Redis store (runtime/redis_scripts.cpp says what
// each one's KEYS and ARGV are and what it checks). Every check and write of
// one call runs in one script, atomically, on Redis' own clock (TIME).
#pragma once

namespace brigade::runtime::redis {

extern const char* const create_script;
extern const char* const acquire_script;
extern const char* const locate_script;
extern const char* const renew_script;
extern const char* const release_script;
extern const char* const append_script;
extern const char* const compact_script;

}  // namespace brigade::runtime::redis
