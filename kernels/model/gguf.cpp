#include "kernels/model/gguf.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

namespace brigade::gguf {

namespace {

constexpr uint32_t max_nesting = 4;             // arrays of arrays of ...
constexpr uint64_t max_key_length = 65535;      // GGUF spec
constexpr uint64_t max_tensor_name = 63;        // ggml's GGML_MAX_NAME - 1
constexpr uint32_t max_dims = 4;                // GGML_MAX_DIMS
constexpr uint64_t max_nested_items = 1 << 16;  // arrays inside one array of arrays


bool valid_type(uint32_t t) { return t <= static_cast<uint32_t>(value_type::f64); }

/// Smallest number of bytes one element of type `t` can take in the file;
/// bounds array counts so a huge count cannot make us allocate or loop.
size_t min_encoded_size(value_type t) {
  if (t == value_type::string) return 8;  // length prefix
  if (t == value_type::array) return 12;  // type + count
  return scalar_size(t);
}

/// Bounds-checked little-endian reader over [begin, end).
class cursor {
 public:
  cursor(const unsigned char* base, size_t size) : base_(base), size_(size) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  bool read_bytes(void* dst, size_t n) {
    if (n > remaining()) return false;
    std::memcpy(dst, base_ + pos_, n);
    pos_ += n;
    return true;
  }
  template <class T>
  bool read(T& out) {
    return read_bytes(&out, sizeof(T));
  }
  bool skip(size_t n) {
    if (n > remaining()) return false;
    pos_ += n;
    return true;
  }
  bool read_string(std::string_view& out, uint64_t max_len) {
    uint64_t len = 0;
    if (!read(len)) return false;
    if (len > remaining() || len > max_len) return false;
    out = std::string_view(reinterpret_cast<const char*>(base_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return true;
  }
  const unsigned char* here() const { return base_ + pos_; }

 private:
  const unsigned char* base_;
  size_t size_;
  size_t pos_ = 0;
};

std::string at(size_t pos) { return " at byte " + std::to_string(pos); }

}  // namespace

const char* to_string(value_type t) {
  switch (t) {
    case value_type::u8: return "uint8";
    case value_type::i8: return "int8";
    case value_type::u16: return "uint16";
    case value_type::i16: return "int16";
    case value_type::u32: return "uint32";
    case value_type::i32: return "int32";
    case value_type::f32: return "float32";
    case value_type::boolean: return "bool";
    case value_type::string: return "string";
    case value_type::array: return "array";
    case value_type::u64: return "uint64";
    case value_type::i64: return "int64";
    case value_type::f64: return "float64";
  }
  return "unknown";
}

size_t scalar_size(value_type t) {
  switch (t) {
    case value_type::u8:
    case value_type::i8:
    case value_type::boolean: return 1;
    case value_type::u16:
    case value_type::i16: return 2;
    case value_type::u32:
    case value_type::i32:
    case value_type::f32: return 4;
    case value_type::u64:
    case value_type::i64:
    case value_type::f64: return 8;
    case value_type::string:
    case value_type::array: return 0;
  }
  return 0;
}

bool value::is_integer() const {
  switch (type) {
    case value_type::u8:
    case value_type::i8:
    case value_type::u16:
    case value_type::i16:
    case value_type::u32:
    case value_type::i32:
    case value_type::u64:
    case value_type::i64: return true;
    default: return false;
  }
}

int64_t value::array_int(uint64_t idx) const {
  const unsigned char* p = raw + idx * scalar_size(elem_type);
  switch (elem_type) {
    case value_type::u8:
    case value_type::boolean: return *p;
    case value_type::i8: return static_cast<int8_t>(*p);
    case value_type::u16: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return v;
    }
    case value_type::i16: {
      int16_t v;
      std::memcpy(&v, p, 2);
      return v;
    }
    case value_type::u32: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case value_type::i32: {
      int32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case value_type::u64: {
      uint64_t v;
      std::memcpy(&v, p, 8);
      return static_cast<int64_t>(v);
    }
    case value_type::i64: {
      int64_t v;
      std::memcpy(&v, p, 8);
      return v;
    }
    case value_type::f32: {
      float v;
      std::memcpy(&v, p, 4);
      return static_cast<int64_t>(v);
    }
    case value_type::f64: {
      double v;
      std::memcpy(&v, p, 8);
      return static_cast<int64_t>(v);
    }
    default: return 0;
  }
}

double value::array_float(uint64_t idx) const {
  const unsigned char* p = raw + idx * scalar_size(elem_type);
  if (elem_type == value_type::f32) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
  if (elem_type == value_type::f64) {
    double v;
    std::memcpy(&v, p, 8);
    return v;
  }
  return static_cast<double>(array_int(idx));
}

namespace {

/// Reads one value of type `t` (already read) at the cursor.
status read_value(cursor& c, value_type t, value& out, uint32_t depth, const std::string& where) {
  out.type = t;
  const size_t start = c.pos();
  auto truncated = [&] {
    return status{errc::malformed, where + ": truncated " + to_string(t) + " value" + at(start)};
  };
  switch (t) {
    case value_type::u8:
    case value_type::boolean: {
      uint8_t v;
      if (!c.read(v)) return truncated();
      if (t == value_type::boolean && v > 1)
        return {errc::malformed, where + ": bool value " + std::to_string(v) + " is neither 0 nor 1" + at(start)};
      out.u = v;
      out.i = v;
      return {};
    }
    case value_type::i8: {
      int8_t v;
      if (!c.read(v)) return truncated();
      out.i = v;
      out.u = static_cast<uint64_t>(v);
      return {};
    }
    case value_type::u16: {
      uint16_t v;
      if (!c.read(v)) return truncated();
      out.u = v;
      out.i = v;
      return {};
    }
    case value_type::i16: {
      int16_t v;
      if (!c.read(v)) return truncated();
      out.i = v;
      out.u = static_cast<uint64_t>(v);
      return {};
    }
    case value_type::u32: {
      uint32_t v;
      if (!c.read(v)) return truncated();
      out.u = v;
      out.i = v;
      return {};
    }
    case value_type::i32: {
      int32_t v;
      if (!c.read(v)) return truncated();
      out.i = v;
      out.u = static_cast<uint64_t>(v);
      return {};
    }
    case value_type::u64: {
      uint64_t v;
      if (!c.read(v)) return truncated();
      out.u = v;
      out.i = static_cast<int64_t>(v);
      return {};
    }
    case value_type::i64: {
      int64_t v;
      if (!c.read(v)) return truncated();
      out.i = v;
      out.u = static_cast<uint64_t>(v);
      return {};
    }
    case value_type::f32: {
      float v;
      if (!c.read(v)) return truncated();
      out.f = v;
      return {};
    }
    case value_type::f64: {
      double v;
      if (!c.read(v)) return truncated();
      out.f = v;
      return {};
    }
    case value_type::string:
      if (!c.read_string(out.s, std::numeric_limits<uint64_t>::max()))
        return {errc::malformed, where + ": string length runs past the end of the file" + at(start)};
      return {};
    case value_type::array: {
      if (depth >= max_nesting)
        return {errc::malformed, where + ": arrays nested deeper than " + std::to_string(max_nesting) + at(start)};
      uint32_t et = 0;
      if (!c.read(et) || !c.read(out.count)) return truncated();
      if (!valid_type(et))
        return {errc::malformed, where + ": unknown array element type " + std::to_string(et) + at(start)};
      out.elem_type = static_cast<value_type>(et);
      const size_t min = min_encoded_size(out.elem_type);
      if (out.count > c.remaining() / min)
        return {errc::malformed, where + ": array of " + std::to_string(out.count) + " " + to_string(out.elem_type) +
                                     " elements does not fit in the " + std::to_string(c.remaining()) + " bytes left" +
                                     at(start)};
      if (out.elem_type == value_type::string) {
        out.strings.resize(static_cast<size_t>(out.count));
        for (auto& s : out.strings)
          if (!c.read_string(s, std::numeric_limits<uint64_t>::max()))
            return {errc::malformed, where + ": string in array runs past the end of the file" + at(c.pos())};
      } else if (out.elem_type == value_type::array) {
        // Each nested array costs far more memory than its 12 bytes in the
        // file; bound the count so a small hostile file cannot exhaust memory.
        if (out.count > max_nested_items)
          return {errc::malformed, where + ": " + std::to_string(out.count) + " nested arrays (at most " +
                                       std::to_string(max_nested_items) + " are accepted)" + at(start)};
        out.items.resize(static_cast<size_t>(out.count));
        for (auto& item : out.items)
          if (auto st = read_value(c, value_type::array, item, depth + 1, where); !st) return st;
      } else {
        out.raw = c.here();
        c.skip(static_cast<size_t>(out.count) * min);  // fits: checked above
        if (out.elem_type == value_type::boolean)
          for (uint64_t k = 0; k < out.count; ++k)
            if (out.raw[k] > 1) return {errc::malformed, where + ": bool array element is neither 0 nor 1" + at(start)};
      }
      return {};
    }
  }
  return {errc::malformed, where + ": unknown value type" + at(start)};
}

}  // namespace

result<gguf_file> gguf_file::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return status{errc::io, path + ": cannot open (" + std::strerror(errno) + ")"};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return status{errc::io, path + ": cannot stat (" + std::strerror(e) + ")"};
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return status{errc::io, path + ": not a regular file"};
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return status{errc::malformed, path + ": empty file, not a GGUF model"};
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int e = errno;
  ::close(fd);
  if (map == MAP_FAILED) return status{errc::io, path + ": cannot map (" + std::strerror(e) + ")"};
  gguf_file f;
  f.name_ = path;
  f.base_ = static_cast<const unsigned char*>(map);
  f.size_ = size;
  f.mapping_ = map;
  if (auto s = f.parse_all(); !s) return s;
  return f;
}

result<gguf_file> gguf_file::parse(const void* data, size_t size, std::string name) {
  gguf_file f;
  f.name_ = std::move(name);
  f.base_ = static_cast<const unsigned char*>(data);
  f.size_ = size;
  if (auto s = f.parse_all(); !s) return s;
  return f;
}

gguf_file::gguf_file(gguf_file&& o) noexcept { *this = std::move(o); }

gguf_file& gguf_file::operator=(gguf_file&& o) noexcept {
  if (this != &o) {
    if (mapping_) ::munmap(mapping_, size_);
    name_ = std::move(o.name_);
    base_ = o.base_;
    size_ = o.size_;
    mapping_ = o.mapping_;
    version_ = o.version_;
    alignment_ = o.alignment_;
    data_offset_ = o.data_offset_;
    kv_ = std::move(o.kv_);
    kv_index_ = std::move(o.kv_index_);
    tensors_ = std::move(o.tensors_);
    tensor_index_ = std::move(o.tensor_index_);
    o.mapping_ = nullptr;
    o.base_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

gguf_file::~gguf_file() {
  if (mapping_) ::munmap(mapping_, size_);
}

status gguf_file::parse_all() {
  cursor c(base_, size_);
  const std::string& n = name_;
  char magic[4];
  if (!c.read_bytes(magic, 4))
    return {errc::malformed, n + ": file of " + std::to_string(size_) + " bytes is too short for a GGUF header"};
  if (std::memcmp(magic, "GGUF", 4) != 0)
    return {errc::malformed, n + ": bad magic (not a GGUF file; expected the bytes 'GGUF' at offset 0)"};
  if (!c.read(version_)) return {errc::malformed, n + ": truncated header (no version)"};
  const uint32_t swapped = __builtin_bswap32(version_);
  if (version_ != 2 && version_ != 3) {
    if (swapped >= 1 && swapped <= 3) return {errc::unsupported, n + ": big-endian GGUF files are not supported"};
    if (version_ == 1)
      return {errc::unsupported, n + ": GGUF version 1 is not supported (only versions 2 and 3); re-convert the model "
                                     "with a current llama.cpp"};
    return {errc::unsupported,
            n + ": unknown GGUF version " + std::to_string(version_) + " (only versions 2 and 3 are supported)"};
  }
  uint64_t n_tensors = 0, n_kv = 0;
  if (!c.read(n_tensors) || !c.read(n_kv)) return {errc::malformed, n + ": truncated header (tensor and key counts)"};
  // A key/value takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor
  // info at least 8 + 4 + 8 + 4 + 8.
  if (n_kv > c.remaining() / 13)
    return {errc::malformed,
            n + ": header claims " + std::to_string(n_kv) + " metadata keys, more than the file can hold"};
  if (n_tensors > c.remaining() / 32)
    return {errc::malformed,
            n + ": header claims " + std::to_string(n_tensors) + " tensors, more than the file can hold"};

  kv_.reserve(static_cast<size_t>(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    const size_t start = c.pos();
    std::string_view key;
    if (!c.read_string(key, max_key_length))
      return {errc::malformed, n + ": metadata key " + std::to_string(k) + " is truncated or longer than " +
                                   std::to_string(max_key_length) + " bytes" + at(start)};
    if (key.empty()) return {errc::malformed, n + ": metadata key " + std::to_string(k) + " is empty" + at(start)};
    uint32_t t = 0;
    if (!c.read(t)) return {errc::malformed, n + ": truncated type of key '" + std::string(key) + "'" + at(start)};
    if (!valid_type(t))
      return {errc::malformed,
              n + ": key '" + std::string(key) + "' has unknown value type " + std::to_string(t) + at(start)};
    value v;
    if (auto s = read_value(c, static_cast<value_type>(t), v, 0, n + ": key '" + std::string(key) + "'"); !s) return s;
    if (!kv_index_.emplace(key, kv_.size()).second)
      return {errc::malformed, n + ": duplicate metadata key '" + std::string(key) + "'"};
    kv_.emplace_back(key, std::move(v));
  }

  if (const value* a = find("general.alignment")) {
    if (a->type != value_type::u32)
      return {errc::malformed, n + ": general.alignment must be a uint32, not " + to_string(a->type)};
    if (a->u == 0 || (a->u & (a->u - 1)) != 0)
      return {errc::malformed, n + ": general.alignment " + std::to_string(a->u) + " is not a power of two"};
    alignment_ = static_cast<uint32_t>(a->u);
  }

  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    const size_t start = c.pos();
    tensor_info ti;
    if (!c.read_string(ti.name, std::numeric_limits<uint64_t>::max()))
      return {errc::malformed,
              n + ": tensor " + std::to_string(k) + ": name runs past the end of the file" + at(start)};
    const std::string tn = n + ": tensor '" + std::string(ti.name) + "'";
    if (ti.name.empty() || ti.name.size() > max_tensor_name)
      return {errc::malformed, tn + ": name must be 1 to " + std::to_string(max_tensor_name) + " bytes" + at(start)};
    if (!c.read(ti.n_dims)) return {errc::malformed, tn + ": truncated" + at(start)};
    if (ti.n_dims == 0 || ti.n_dims > max_dims)
      return {errc::malformed, tn + ": " + std::to_string(ti.n_dims) + " dimensions (1 to 4 allowed)"};
    for (uint32_t d = 0; d < ti.n_dims; ++d) {
      uint64_t ne = 0;
      if (!c.read(ne)) return {errc::malformed, tn + ": truncated shape" + at(start)};
      if (ne == 0 || ne > (uint64_t{1} << 40))
        return {errc::malformed,
                tn + ": dimension " + std::to_string(d) + " of size " + std::to_string(ne) + " is out of range"};
      ti.ne[d] = static_cast<int64_t>(ne);
    }
    uint32_t type = 0;
    if (!c.read(type) || !c.read(ti.offset)) return {errc::malformed, tn + ": truncated type or offset" + at(start)};
    if (!ggml_type_supported(type)) {
      const char* tname = ggml_type_name(type);
      if (!tname) return {errc::malformed, tn + ": unknown tensor type " + std::to_string(type)};
      return {errc::unsupported,
              tn + ": tensor type " + tname +
                  " is not supported (brigade reads F32, F16, BF16 and Q8_0); re-quantise the model to one of those"};
    }
    ti.type = static_cast<ggml_type>(type);
    // Element count, checked before every factor so it never overflows.
    int64_t elems = 1;
    for (uint32_t d = 0; d < max_dims; ++d) {
      if (elems > (int64_t{1} << 48) / ti.ne[d])
        return {errc::malformed, tn + ": more than 2^48 elements is absurdly large"};
      elems *= ti.ne[d];
    }
    const ggml_type_traits tr = ggml_traits(ti.type);
    if (ti.ne[0] % tr.block_elems != 0)
      return {errc::malformed, tn + ": row length " + std::to_string(ti.ne[0]) + " is not a multiple of the " +
                                   ggml_type_name(type) + " block size " + std::to_string(tr.block_elems)};
    ti.n_bytes = static_cast<uint64_t>(elems / tr.block_elems) * tr.block_bytes;
    if (ti.offset % alignment_ != 0)
      return {errc::malformed,
              tn + ": data offset " + std::to_string(ti.offset) + " is not aligned to " + std::to_string(alignment_)};
    if (!tensor_index_.emplace(ti.name, tensors_.size()).second)
      return {errc::malformed, n + ": duplicate tensor name '" + std::string(ti.name) + "'"};
    tensors_.push_back(ti);
  }

  // The data section starts at the next multiple of the alignment.
  const uint64_t header_end = c.pos();
  data_offset_ = (header_end + alignment_ - 1) / alignment_ * alignment_;
  if (!tensors_.empty()) {
    if (data_offset_ > size_)
      return {errc::malformed, n + ": truncated: the tensor data section would start at byte " +
                                   std::to_string(data_offset_) + " but the file has " + std::to_string(size_)};
    const uint64_t data_size = size_ - data_offset_;
    for (auto& ti : tensors_) {
      if (ti.offset > data_size || ti.n_bytes > data_size - ti.offset)
        return {errc::malformed, n + ": tensor '" + std::string(ti.name) + "': its " + std::to_string(ti.n_bytes) +
                                     " bytes at data offset " + std::to_string(ti.offset) +
                                     " run past the end of the file (truncated download?)"};
      ti.data = base_ + data_offset_ + ti.offset;
    }
  }
  return {};
}

const value* gguf_file::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const tensor_info* gguf_file::find_tensor(std::string_view tname) const {
  auto it = tensor_index_.find(tname);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {
status wrong_type(const std::string& file, std::string_view key, const char* want, value_type got) {
  return {errc::malformed, file + ": key '" + std::string(key) + "' should be " + want + ", not " + to_string(got)};
}
}  // namespace

result<std::string> gguf_file::get_string(std::string_view key, std::string fallback) const {
  const value* v = find(key);
  if (!v) return fallback;
  if (v->type != value_type::string) return wrong_type(name_, key, "a string", v->type);
  return std::string(v->s);
}

result<uint64_t> gguf_file::get_uint(std::string_view key, uint64_t fallback) const {
  const value* v = find(key);
  if (!v) return fallback;
  if (!v->is_integer()) return wrong_type(name_, key, "an integer", v->type);
  if (v->i < 0 && v->type != value_type::u64)
    return status{errc::malformed,
                  name_ + ": key '" + std::string(key) + "' is negative (" + std::to_string(v->i) + ")"};
  return v->u;
}

result<double> gguf_file::get_float(std::string_view key, double fallback) const {
  const value* v = find(key);
  if (!v) return fallback;
  if (v->is_float()) return v->f;
  if (v->is_integer()) return static_cast<double>(v->i);
  return wrong_type(name_, key, "a number", v->type);
}

result<bool> gguf_file::get_bool(std::string_view key, bool fallback) const {
  const value* v = find(key);
  if (!v) return fallback;
  if (v->type != value_type::boolean) return wrong_type(name_, key, "a bool", v->type);
  return v->u != 0;
}

result<const value*> gguf_file::get_array(std::string_view key, value_type elem_type) const {
  const value* v = find(key);
  if (!v) return status{errc::not_found, name_ + ": required key '" + std::string(key) + "' is missing"};
  if (v->type != value_type::array) return wrong_type(name_, key, "an array", v->type);
  if (v->elem_type != elem_type)
    return status{errc::malformed, name_ + ": key '" + std::string(key) + "' should be an array of " +
                                       to_string(elem_type) + ", not of " + to_string(v->elem_type)};
  return v;
}

}  // namespace brigade::gguf
