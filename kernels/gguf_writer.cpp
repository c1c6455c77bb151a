#include "kernels/gguf_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

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

status writer::add_tensor(std::string_view name, ggml_type type, const std::vector<int64_t>& shape, const void* data,
                          size_t n_bytes) {
  if (shape.empty() || shape.size() > 4)
    return {errc::invalid_argument, "tensor '" + std::string(name) + "': 1 to 4 dimensions required"};
  const ggml_type_traits tr = ggml_traits(type);
  int64_t elems = 1;
  for (int64_t d : shape) elems *= d;
  if (shape[0] % tr.block_elems != 0)
    return {errc::invalid_argument, "tensor '" + std::string(name) + "': row length not a multiple of the block size"};
  if (static_cast<size_t>(elems / tr.block_elems * tr.block_bytes) != n_bytes)
    return {errc::invalid_argument, "tensor '" + std::string(name) + "': byte size does not match its shape and type"};
  data_.resize((data_.size() + alignment_ - 1) / alignment_ * alignment_, 0);
  put_str(infos_, name);
  put_pod<uint32_t>(infos_, static_cast<uint32_t>(shape.size()));
  for (int64_t d : shape) put_pod<uint64_t>(infos_, static_cast<uint64_t>(d));
  put_pod<uint32_t>(infos_, static_cast<uint32_t>(type));
  put_pod<uint64_t>(infos_, data_.size());
  put(data_, data, n_bytes);
  ++n_tensors_;
  return {};
}

std::vector<unsigned char> writer::bytes() const {
  std::vector<unsigned char> out;
  put(out, "GGUF", 4);
  put_pod<uint32_t>(out, 3);
  put_pod<uint64_t>(out, n_tensors_);
  put_pod<uint64_t>(out, n_kv_);
  put(out, kv_.data(), kv_.size());
  put(out, infos_.data(), infos_.size());
  if (n_tensors_ > 0) {
    out.resize((out.size() + alignment_ - 1) / alignment_ * alignment_, 0);
    put(out, data_.data(), data_.size());
  }
  return out;
}

status writer::write_file(const std::string& path) const {
  const std::vector<unsigned char> image = bytes();
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return {errc::io, path + ": cannot create (" + std::strerror(errno) + ")"};
  size_t done = 0;
  while (done < image.size()) {
    const ssize_t w = ::write(fd, image.data() + done, image.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return {errc::io, path + ": write failed (" + std::strerror(e) + ")"};
    }
    done += static_cast<size_t>(w);
  }
  const int rc_sync = ::fsync(fd);
  const int e_sync = errno;
  const int rc_close = ::close(fd);
  if (rc_sync != 0 || rc_close != 0) {
    const int e = rc_sync != 0 ? e_sync : errno;
    ::unlink(tmp.c_str());
    return {errc::io, path + ": cannot flush (" + std::strerror(e) + ")"};
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return {errc::io, path + ": cannot rename into place (" + std::strerror(e) + ")"};
  }
  return {};
}

}  // namespace brigade::gguf
