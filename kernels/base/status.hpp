// status and result<T>: the error type of kernels/ (no CAF, no exceptions).
//
// kernels/ is built without CAF (GPU machines, the engine-only configure), so
// it carries its own small error type. A `status` is a code plus one sentence
// naming the cause; `result<T>` holds either a value or a non-ok status. Above
// kernels/ the session actor turns them into caf::error (runtime/protocol.hpp).
// Nothing in kernels/ throws across its public API.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace brigade {

/// Error codes of kernels/. Each has a one-line meaning.
enum class errc {
  ok = 0,
  io,                ///< the file could not be opened, read or mapped
  malformed,         ///< the bytes break the format (bad magic, truncated, out of range)
  unsupported,       ///< well-formed, but a feature brigade does not implement
  invalid_argument,  ///< the caller passed a value outside the contract
  not_found,         ///< a required key, tensor or token is missing
  resource,          ///< out of memory or device resources; retryable after freeing some
  device,            ///< a GPU runtime call failed
};

const char* to_string(errc code);

/// A code (an enum whose value 0 is `ok`) plus one sentence naming the
/// cause. kernels/ uses `status` (errc); a layer above may have its own codes
/// (runtime's store_errc) with the same type.
template <class Code>
class [[nodiscard]] basic_status {
 public:
  using code_type = Code;
  basic_status() = default;
  basic_status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static basic_status ok_status() { return {}; }

  bool ok() const { return code_ == Code{}; }
  explicit operator bool() const { return ok(); }
  Code code() const { return code_; }
  /// One sentence naming the cause (empty when ok).
  const std::string& message() const { return message_; }

 private:
  Code code_{};
  std::string message_;
};

using status = basic_status<errc>;

/// A value or an error. Access the value only after checking ok().
template <class T, class Status = status>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::move(value)) {}       // NOLINT: implicit by design
  result(Status error) : v_(std::move(error)) {}  // NOLINT: must not be ok
  result(typename Status::code_type code, std::string message) : v_(Status{code, std::move(message)}) {}

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  /// The error; ok status when a value is held.
  Status error() const { return ok() ? Status{} : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace brigade
