// GGUF writer: builds a version-3 GGUF file.
//
// Used by `brigade model synth` and by tests that need valid, then
// deliberately broken, files. Keys and tensors are written in the order they
// were added. Tensor data is either given up front (`add_tensor`, small
// files and tests) or produced while writing (`add_tensor_info` plus the
// `fill` callback of `write_file`), so a 2 GiB model never sits in memory
// twice. Not thread-safe; one writer per file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/model/gguf.hpp"
#include "kernels/base/status.hpp"

namespace brigade::gguf {

class writer {
 public:
  explicit writer(uint32_t alignment = 32) : alignment_(alignment) {}

  void add_u8(std::string_view key, uint8_t v) { scalar(key, value_type::u8, &v, 1); }
  void add_i8(std::string_view key, int8_t v) { scalar(key, value_type::i8, &v, 1); }
  void add_u16(std::string_view key, uint16_t v) { scalar(key, value_type::u16, &v, 2); }
  void add_i16(std::string_view key, int16_t v) { scalar(key, value_type::i16, &v, 2); }
  void add_u32(std::string_view key, uint32_t v) { scalar(key, value_type::u32, &v, 4); }
  void add_i32(std::string_view key, int32_t v) { scalar(key, value_type::i32, &v, 4); }
  void add_u64(std::string_view key, uint64_t v) { scalar(key, value_type::u64, &v, 8); }
  void add_i64(std::string_view key, int64_t v) { scalar(key, value_type::i64, &v, 8); }
  void add_f32(std::string_view key, float v) { scalar(key, value_type::f32, &v, 4); }
  void add_f64(std::string_view key, double v) { scalar(key, value_type::f64, &v, 8); }
  void add_bool(std::string_view key, bool v) {
    uint8_t b = v ? 1 : 0;
    scalar(key, value_type::boolean, &b, 1);
  }
  void add_string(std::string_view key, std::string_view v);
  void add_string_array(std::string_view key, const std::vector<std::string>& v);
  void add_f32_array(std::string_view key, const std::vector<float>& v);
  void add_i32_array(std::string_view key, const std::vector<int32_t>& v);
  /// Copies a value read from another file (any type, nested arrays included).
  void add_value(std::string_view key, const value& v);

  /// Adds a tensor with its data; `data` must hold exactly the bytes of `type`
  /// for `shape` (shape[0] is the row length). Returns invalid_argument otherwise.
  status add_tensor(std::string_view name, ggml_type type, const std::vector<int64_t>& shape, const void* data,
                    size_t n_bytes);
  /// Adds a tensor whose data `write_file`'s `fill` callback produces.
  status add_tensor_info(std::string_view name, ggml_type type, const std::vector<int64_t>& shape);

  /// Called once per tensor added with add_tensor_info, in file order, with
  /// the tensor's position among all tensors: write exactly `n_bytes` to `dst`.
  using fill_fn = std::function<void(size_t tensor_index, unsigned char* dst, size_t n_bytes)>;

  /// The complete file image (only when every tensor has its data).
  std::vector<unsigned char> bytes() const;
  /// Writes the file to `path` atomically (temporary file, fsync, rename).
  status write_file(const std::string& path, const fill_fn& fill = nullptr) const;

 private:
  struct tensor_entry {
    std::string name;
    ggml_type type;
    std::vector<int64_t> shape;
    uint64_t offset;
    size_t n_bytes;
    bool has_data;
    std::vector<unsigned char> data;
  };
  status add_entry(std::string_view name, ggml_type type, const std::vector<int64_t>& shape, const void* data,
                   size_t n_bytes, bool has_data);
  void put_key(std::string_view key, value_type t);
  void scalar(std::string_view key, value_type t, const void* p, size_t n);
  void put_value_body(const value& v);
  std::vector<unsigned char> header() const;  // everything before the tensor data

  uint32_t alignment_;
  uint64_t n_kv_ = 0;
  std::vector<unsigned char> kv_;  // encoded key/value pairs
  std::vector<tensor_entry> tensors_;
  uint64_t data_size_ = 0;
};

}  // namespace brigade::gguf
