// Node-internal message types (never sent over the network): engine events
// and store results turned into messages for the actor that asked.
#pragma once

#include <caf/allowed_unsafe_message_type.hpp>

#include <memory>

#include "actors/batch_loop.hpp"
#include "runtime/store.hpp"

namespace brigade::actors {

struct store_status {
  status st;
};

struct loaded_snapshot {
  std::shared_ptr<result<runtime::session_snapshot>> r;
};

}  // namespace brigade::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(brigade::actors::gen_event)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(brigade::actors::store_status)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(brigade::actors::loaded_snapshot)
