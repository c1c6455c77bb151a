// status and result<T>: the error type of kernels/ (no CAF, no exceptions).
//
// kernels/ is built without CAF (GPU machines, the engine-only configure), so
// it carries its own small error type. A `status` is a code plus one sentence
// naming the cause; `result<T>` holds either a value or a non-ok status. The
// batcher converts both to caf::error (later issue). Nothing in kernels/ throws
// across its public API.
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
  conflict,          ///< someone else holds it (an ownership lease, a newer epoch)
};

const char* to_string(errc code);

class [[nodiscard]] status {
 public:
  status() = default;
  status(errc code, std::string message) : code_(code), message_(std::move(message)) {}

  static status ok_status() { return {}; }

  bool ok() const { return code_ == errc::ok; }
  explicit operator bool() const { return ok(); }
  errc code() const { return code_; }
  /// One sentence naming the cause (empty when ok).
  const std::string& message() const { return message_; }

 private:
  errc code_ = errc::ok;
  std::string message_;
};

/// A value or an error. Access the value only after checking ok().
template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::move(value)) {}       // NOLINT: implicit by design
  result(status error) : v_(std::move(error)) {}  // NOLINT: must not be ok
  result(errc code, std::string message) : v_(status{code, std::move(message)}) {}

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
  status error() const { return ok() ? status{} : std::get<status>(v_); }

 private:
  std::variant<T, status> v_;
};

}  // namespace brigade
