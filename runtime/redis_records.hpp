// The msgpack records of the Redis store: one turn (an array of the schema
// version and the turn_record's fields in order), and the snapshot (schema
// version, turn count, the turns). msgpack-c throws on malformed input;
// unpack_history converts that into store_errc::malformed, nothing escapes.
#pragma once

#include <hiredis/hiredis.h>

#include <msgpack.hpp>
#include <string>
#include <vector>

#include "runtime/store.hpp"
#include "runtime/turn_record.hpp"

namespace brigade::runtime::redis {

/// Snapshots, and turn records without an idempotency key (written as
/// before, so earlier builds read them).
constexpr int schema_version = 1;
/// A turn record with an idempotency key: 8 fields, the key last. Earlier
/// builds refuse it rather than lose the key.
constexpr int schema_version_key = 2;
/// The meta hash (field `v`): 2 added `inc`, the holder's incarnation. A
/// meta of version 1 is read as one without a holder incarnation and
/// rewritten as version 2 by the next acquire.
constexpr int meta_schema_version = 2;
/// 3 adds `sys`, the session's system prompt; written only for sessions
/// that have one (the others stay version 2). Acquire keeps a 3.
constexpr int meta_schema_version_system = 3;

void pack_turn(msgpack::packer<msgpack::sbuffer>& pk, const turn_record& t);
/// Throws on a malformed record (the callers catch).
turn_record unpack_turn(const msgpack::object& o);
std::string pack_snapshot(const std::vector<turn_record>& turns);
/// Appends the turns of the snapshot and then of the list to `out`, checking
/// that seqs run 1, 2, 3...; an error names what is damaged.
store_status unpack_history(const std::string& id, const redisReply* snap, const redisReply* list,
                            std::vector<turn_record>& out);

}  // namespace brigade::runtime::redis
