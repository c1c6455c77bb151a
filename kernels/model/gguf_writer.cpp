#include "kernels/model/gguf_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace brigade::gguf {

namespace {
void put(std::vector<unsigned char>& out, const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  out.insert(out.end(), b, b + n);
}
template <class T>
void put_pod(std::vector<unsigned char>& out, T v) {
  put(out, &v, sizeof v);
}
void put_str(std::vector<unsigned char>& out, std::string_view s) {
  put_pod<uint64_t>(out, s.size());
  put(out, s.data(), s.size());
}

/// write(2) all of `n` bytes.
bool write_all(int fd, const unsigned char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}
}  // namespace

void writer::put_key(std::string_view key, value_type t) {
  put_str(kv_, key);
  put_pod<uint32_t>(kv_, static_cast<uint32_t>(t));
  ++n_kv_;
}

void writer::scalar(std::string_view key, value_type t, const void* p, size_t n) {
  put_key(key, t);
  put(kv_, p, n);
}

void writer::add_string(std::string_view key, std::string_view v) {
  put_key(key, value_type::string);
  put_str(kv_, v);
}

void writer::add_string_array(std::string_view key, const std::vector<std::string>& v) {
  put_key(key, value_type::array);
  put_pod<uint32_t>(kv_, static_cast<uint32_t>(value_type::string));
  put_pod<uint64_t>(kv_, v.size());
  for (const auto& s : v) put_str(kv_, s);
}

void writer::add_f32_array(std::string_view key, const std::vector<float>& v) {
  put_key(key, value_type::array);
  put_pod<uint32_t>(kv_, static_cast<uint32_t>(value_type::f32));
  put_pod<uint64_t>(kv_, v.size());
  put(kv_, v.data(), v.size() * sizeof(float));
}

void writer::add_i32_array(std::string_view key, const std::vector<int32_t>& v) {
  put_key(key, value_type::array);
  put_pod<uint32_t>(kv_, static_cast<uint32_t>(value_type::i32));
  put_pod<uint64_t>(kv_, v.size());
  put(kv_, v.data(), v.size() * sizeof(int32_t));
}

void writer::put_value_body(const value& v) {
  switch (v.type) {
    case value_type::string: put_str(kv_, v.s); return;
    case value_type::f32: {
      const float f = static_cast<float>(v.f);
      put(kv_, &f, 4);
      return;
    }
    case value_type::f64: put(kv_, &v.f, 8); return;
    case value_type::array:
      put_pod<uint32_t>(kv_, static_cast<uint32_t>(v.elem_type));
      put_pod<uint64_t>(kv_, v.count);
      if (v.elem_type == value_type::string) {
        for (auto s : v.strings) put_str(kv_, s);
      } else if (v.elem_type == value_type::array) {
        for (const auto& item : v.items) put_value_body(item);
      } else {
        put(kv_, v.raw, static_cast<size_t>(v.count) * scalar_size(v.elem_type));
      }
      return;
    default: put(kv_, &v.u, scalar_size(v.type)); return;  // little-endian: low bytes first
  }
}

void writer::add_value(std::string_view key, const value& v) {
  put_key(key, v.type);
  put_value_body(v);
}

status writer::add_entry(std::string_view name, ggml_type type, const std::vector<int64_t>& shape, const void* data,
                         size_t n_bytes, bool has_data) {
  if (shape.empty() || shape.size() > 4)
    return {errc::invalid_argument, "tensor '" + std::string(name) + "': 1 to 4 dimensions required"};
  const ggml_type_traits tr = ggml_traits(type);
  int64_t elems = 1;
  for (int64_t d : shape) elems *= d;
  if (shape[0] % tr.block_elems != 0)
    return {errc::invalid_argument, "tensor '" + std::string(name) + "': row length not a multiple of the block size"};
  const size_t want = static_cast<size_t>(elems / tr.block_elems * tr.block_bytes);
  if (has_data && want != n_bytes)
    return {errc::invalid_argument, "tensor '" + std::string(name) + "': byte size does not match its shape and type"};
  data_size_ = (data_size_ + alignment_ - 1) / alignment_ * alignment_;
  tensor_entry e{std::string(name), type, shape, data_size_, want, has_data, {}};
  if (has_data) e.data.assign(static_cast<const unsigned char*>(data), static_cast<const unsigned char*>(data) + want);
  data_size_ += want;
  tensors_.push_back(std::move(e));
  return {};
}

status writer::add_tensor(std::string_view name, ggml_type type, const std::vector<int64_t>& shape, const void* data,
                          size_t n_bytes) {
  return add_entry(name, type, shape, data, n_bytes, true);
}

status writer::add_tensor_info(std::string_view name, ggml_type type, const std::vector<int64_t>& shape) {
  return add_entry(name, type, shape, nullptr, 0, false);
}

std::vector<unsigned char> writer::header() const {
  std::vector<unsigned char> out;
  put(out, "GGUF", 4);
  put_pod<uint32_t>(out, 3);
  put_pod<uint64_t>(out, tensors_.size());
  put_pod<uint64_t>(out, n_kv_);
  put(out, kv_.data(), kv_.size());
  for (const auto& t : tensors_) {
    put_str(out, t.name);
    put_pod<uint32_t>(out, static_cast<uint32_t>(t.shape.size()));
    for (int64_t d : t.shape) put_pod<uint64_t>(out, static_cast<uint64_t>(d));
    put_pod<uint32_t>(out, static_cast<uint32_t>(t.type));
    put_pod<uint64_t>(out, t.offset);
  }
  if (!tensors_.empty()) out.resize((out.size() + alignment_ - 1) / alignment_ * alignment_, 0);
  return out;
}

std::vector<unsigned char> writer::bytes() const {
  std::vector<unsigned char> out = header();
  const size_t base = out.size();
  for (const auto& t : tensors_) {
    out.resize(base + t.offset, 0);
    put(out, t.data.data(), t.data.size());
  }
  return out;
}

status writer::write_file(const std::string& path, const fill_fn& fill) const {
  for (const auto& t : tensors_)
    if (!t.has_data && !fill)
      return {errc::invalid_argument, path + ": tensor '" + t.name + "' has no data and no fill callback was given"};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return {errc::io, path + ": cannot create (" + std::strerror(errno) + ")"};
  auto fail = [&](const char* what) {
    const int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return status{errc::io, path + ": " + what + " (" + std::strerror(e) + ")"};
  };
  std::vector<unsigned char> buf = header();
  if (!write_all(fd, buf.data(), buf.size())) return fail("write failed");
  uint64_t at = 0;
  size_t index = 0;
  static const unsigned char zeros[64] = {};
  for (const auto& t : tensors_) {
    for (; at < t.offset; at += std::min<uint64_t>(sizeof zeros, t.offset - at))
      if (!write_all(fd, zeros, static_cast<size_t>(std::min<uint64_t>(sizeof zeros, t.offset - at))))
        return fail("write failed");
    if (t.has_data) {
      if (!write_all(fd, t.data.data(), t.n_bytes)) return fail("write failed");
    } else {
      buf.assign(t.n_bytes, 0);
      fill(index, buf.data(), t.n_bytes);
      if (!write_all(fd, buf.data(), t.n_bytes)) return fail("write failed");
    }
    at = t.offset + t.n_bytes;
    ++index;
  }
  if (::fsync(fd) != 0) return fail("cannot flush");
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return {errc::io, path + ": cannot close (" + std::strerror(e) + ")"};
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return {errc::io, path + ": cannot rename into place (" + std::strerror(e) + ")"};
  }
  return {};
}

}  // namespace brigade::gguf
