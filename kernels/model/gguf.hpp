// GGUF reader: a memory-mapped, bounds-checked view of a GGUF file.
//
// Start here to understand how brigade loads models. `gguf_file::open` maps
// the file read-only and validates the whole structure up front: header,
// every metadata key/value (all 13 value types, nested arrays), the tensor
// table, alignment and that every tensor's bytes lie inside the file. After a
// successful open, no accessor can read outside the mapping. Versions 2 and 3
// (little-endian) are read; tensor types F32, F16, BF16 and Q8_0.
//
// Ownership: a gguf_file owns its mapping (or, from `parse`, borrows the
// caller's buffer, which must outlive it). Strings and tensor data returned
// are views into that memory. Thread-safety: immutable after open; any number
// of threads may read concurrently.
//
// Errors (errc): io (cannot open/map), malformed (bad magic, truncated,
// offsets or sizes out of range, absurd counts, duplicate keys), unsupported
// (version 1 or >3, big-endian, tensor types other than the four above).
// Every message names the file and the problem.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/model/ggml_types.hpp"
#include "kernels/base/status.hpp"

namespace brigade::gguf {

enum class value_type : uint32_t {
  u8 = 0,
  i8 = 1,
  u16 = 2,
  i16 = 3,
  u32 = 4,
  i32 = 5,
  f32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  u64 = 10,
  i64 = 11,
  f64 = 12,
};

const char* to_string(value_type t);

/// Bytes of one element of a fixed-size type in the file (0 for string and array).
size_t scalar_size(value_type t);

/// One metadata value. Scalars live in the fields below; arrays of fixed-size
/// scalars keep a pointer to their (unaligned, little-endian) bytes; string
/// arrays become views in `strings`, arrays of arrays are expanded in `items`.
struct value {
  value_type type = value_type::u8;
  // scalar payloads (only the one matching `type` is meaningful)
  uint64_t u = 0;      // u8..u64, boolean
  int64_t i = 0;       // i8..i64
  double f = 0.0;      // f32, f64
  std::string_view s;  // string
  // arrays
  value_type elem_type = value_type::u8;
  uint64_t count = 0;
  const unsigned char* raw = nullptr;     // fixed-size element arrays
  std::vector<std::string_view> strings;  // string arrays
  std::vector<value> items;               // arrays of arrays

  bool is_integer() const;
  bool is_float() const { return type == value_type::f32 || type == value_type::f64; }

  /// Element `idx` of a numeric array, as the widest type. Requires idx < count.
  int64_t array_int(uint64_t idx) const;
  double array_float(uint64_t idx) const;
};

struct tensor_info {
  std::string_view name;
  uint32_t n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};  // ne[0] is the contiguous (row) dimension
  ggml_type type = ggml_type::f32;
  uint64_t offset = 0;  // relative to the data section
  uint64_t n_bytes = 0;
  const unsigned char* data = nullptr;

  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
};

class gguf_file {
 public:
  /// Maps and validates `path`.
  static result<gguf_file> open(const std::string& path);
  /// Validates a GGUF image held in memory; `name` is used in messages.
  /// The buffer must outlive the returned object.
  static result<gguf_file> parse(const void* data, size_t size, std::string name);

  gguf_file(gguf_file&&) noexcept;
  gguf_file& operator=(gguf_file&&) noexcept;
  gguf_file(const gguf_file&) = delete;
  gguf_file& operator=(const gguf_file&) = delete;
  ~gguf_file();

  const std::string& name() const { return name_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  size_t size() const { return size_; }
  uint64_t data_offset() const { return data_offset_; }
  /// The whole file image (mapped or parsed from memory).
  const unsigned char* bytes() const { return base_; }

  /// Metadata in file order.
  const std::vector<std::pair<std::string_view, value>>& metadata() const { return kv_; }
  const value* find(std::string_view key) const;

  /// Typed lookups. A missing key gives `fallback`; a key of the wrong type is
  /// an error naming the key, the expected and the actual type.
  result<std::string> get_string(std::string_view key, std::string fallback) const;
  result<uint64_t> get_uint(std::string_view key, uint64_t fallback) const;
  result<double> get_float(std::string_view key, double fallback) const;
  result<bool> get_bool(std::string_view key, bool fallback) const;
  /// A required string array (e.g. tokenizer.ggml.tokens).
  result<const value*> get_array(std::string_view key, value_type elem_type) const;

  const std::vector<tensor_info>& tensors() const { return tensors_; }
  const tensor_info* find_tensor(std::string_view name) const;

 private:
  gguf_file() = default;
  status parse_all();

  std::string name_;
  const unsigned char* base_ = nullptr;
  size_t size_ = 0;
  void* mapping_ = nullptr;  // non-null when we own an mmap
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string_view, value>> kv_;
  std::map<std::string_view, size_t> kv_index_;
  std::vector<tensor_info> tensors_;
  std::map<std::string_view, size_t> tensor_index_;
};

}  // namespace brigade::gguf
