#include "runtime/redis_records.hpp"

#include <stdexcept>

namespace brigade::runtime::redis {

void pack_turn(msgpack::packer<msgpack::sbuffer>& pk, const turn_record& t) {
  const bool keyed = !t.key.empty();
  pk.pack_array(keyed ? 8 : 7);
  pk.pack(keyed ? schema_version_key : schema_version);
  pk.pack(t.seq);
  pk.pack(t.user);
  pk.pack(t.assistant);
  pk.pack(t.prompt_tokens);
  pk.pack(t.generated_tokens);
  pk.pack(t.committed_at_ms);
  if (keyed) pk.pack(t.key);
}

/// Throws on anything but a version-1 (7 fields) or version-2 (8 fields,
/// the key last) turn record (msgpack-c throws too).
turn_record unpack_turn(const msgpack::object& o) {
  const bool v1 = o.type == msgpack::type::ARRAY && o.via.array.size == 7 && o.via.array.ptr[0].as<int>() == schema_version;
  const bool v2 =
      o.type == msgpack::type::ARRAY && o.via.array.size == 8 && o.via.array.ptr[0].as<int>() == schema_version_key;
  if (!v1 && !v2) throw std::runtime_error("not a version-1 or version-2 turn record");
  turn_record t;
  t.seq = o.via.array.ptr[1].as<uint64_t>();
  t.user = o.via.array.ptr[2].as<std::string>();
  t.assistant = o.via.array.ptr[3].as<std::string>();
  t.prompt_tokens = o.via.array.ptr[4].as<uint32_t>();
  t.generated_tokens = o.via.array.ptr[5].as<uint32_t>();
  t.committed_at_ms = o.via.array.ptr[6].as<int64_t>();
  if (v2) t.key = o.via.array.ptr[7].as<std::string>();
  return t;
}

/// Snapshot: [schema, last seq, [turn record...]].
std::string pack_snapshot(const std::vector<turn_record>& turns) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(3);
  pk.pack(schema_version);
  pk.pack(turns.empty() ? uint64_t{0} : turns.back().seq);
  pk.pack_array(static_cast<uint32_t>(turns.size()));
  for (const auto& t : turns) pack_turn(pk, t);
  return {buf.data(), buf.size()};
}

store_status unpack_history(const std::string& id, const redisReply* snap, const redisReply* list,
                            std::vector<turn_record>& out) {
  auto expect_next = [&](const turn_record& t, const std::string& where) -> store_status {
    if (t.seq != out.size() + 1)
      return {store_errc::malformed, "session " + id + ": " + where + " has seq " + std::to_string(t.seq) +
                                         ", expected " + std::to_string(out.size() + 1)};
    return {};
  };
  if (snap && snap->type == REDIS_REPLY_STRING) {
    try {
      msgpack::object_handle h = msgpack::unpack(snap->str, snap->len);
      const msgpack::object& o = h.get();
      if (o.type != msgpack::type::ARRAY || o.via.array.size != 3 || o.via.array.ptr[0].as<int>() != schema_version ||
          o.via.array.ptr[2].type != msgpack::type::ARRAY)
        throw std::runtime_error("not a version-" + std::to_string(schema_version) + " snapshot");
      const auto& turns = o.via.array.ptr[2].via.array;
      for (uint32_t i = 0; i < turns.size; ++i) {
        turn_record t = unpack_turn(turns.ptr[i]);
        if (store_status s = expect_next(t, "snapshot turn " + std::to_string(i + 1)); !s) return s;
        out.push_back(std::move(t));
      }
      if (o.via.array.ptr[1].as<uint64_t>() != out.size()) throw std::runtime_error("its turn count is wrong");
    } catch (const std::exception& ex) {
      return {store_errc::malformed, "session " + id + ": the stored snapshot cannot be read (" + ex.what() +
                                         "); the session's data is damaged"};
    }
  }
  const size_t base = out.size();
  for (size_t i = 0; list && i < list->elements; ++i) {
    const redisReply* e = list->element[i];
    turn_record t;
    try {  // msgpack-c throws on malformed input: convert here, nothing escapes
      msgpack::object_handle h = msgpack::unpack(e->str, e->len);
      t = unpack_turn(h.get());
    } catch (const std::exception& ex) {
      return {store_errc::malformed, "session " + id + ": stored turn " + std::to_string(base + i + 1) +
                                         " cannot be read (" + ex.what() + "); the session's data is damaged"};
    }
    if (store_status s = expect_next(t, "stored turn " + std::to_string(base + i + 1)); !s) return s;
    out.push_back(std::move(t));
  }
  return {};
}

}  // namespace brigade::runtime::redis
