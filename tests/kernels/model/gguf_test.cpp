// GGUF reader: round trips through the writer, every metadata type, and
// malformed files (truncated at every length, corrupted bytes, hostile
// counts/offsets/types). The `asan` label runs this under AddressSanitizer,
// with every image in an exactly-sized heap buffer so over-reads are caught.
#include "kernels/model/gguf.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "kernels/model/gguf_writer.hpp"
#include "tests/kernels/test_support.hpp"

namespace brigade {
namespace {

using gguf::gguf_file;
using gguf::value_type;
using test::exact_buffer;

std::vector<float> ramp(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * std::sin(0.37f * static_cast<float>(i) + 0.1f);
  return v;
}

/// A small valid model image with every value type and all four tensor types.
std::vector<unsigned char> sample_image(uint32_t alignment = 32) {
  gguf::writer w(alignment);
  w.add_string("general.architecture", "llama");
  w.add_u8("t.u8", 200);
  w.add_i8("t.i8", -100);
  w.add_u16("t.u16", 60000);
  w.add_i16("t.i16", -30000);
  w.add_u32("t.u32", 4000000000u);
  w.add_i32("t.i32", -2000000000);
  w.add_u64("t.u64", 1ull << 60);
  w.add_i64("t.i64", -(1ll << 60));
  w.add_f32("t.f32", 1.5f);
  w.add_f64("t.f64", -2.25);
  w.add_bool("t.bool", true);
  w.add_string("t.str", "héllo");
  w.add_string_array("t.strs", {"a", "", "ccc"});
  w.add_f32_array("t.f32s", {0.5f, -1.0f});
  w.add_i32_array("t.i32s", {7, -8, 9});
  if (alignment != 32) w.add_u32("general.alignment", alignment);
  const auto f32 = ramp(5 * 3, 1.0f);
  EXPECT_TRUE(w.add_tensor("w.f32", ggml_type::f32, {5, 3}, f32.data(), f32.size() * 4).ok());
  std::vector<uint16_t> f16(7), bf16(7);
  for (size_t i = 0; i < 7; ++i) {
    f16[i] = f32_to_f16(0.25f * static_cast<float>(i) - 1.0f);
    bf16[i] = f32_to_bf16(3.0f * static_cast<float>(i));
  }
  EXPECT_TRUE(w.add_tensor("w.f16", ggml_type::f16, {7}, f16.data(), 14).ok());
  EXPECT_TRUE(w.add_tensor("w.bf16", ggml_type::bf16, {7, 1, 1}, bf16.data(), 14).ok());
  const auto q = ramp(64 * 2, 0.1f);
  std::vector<q8_0_block> blocks(4);
  quantize_row_q8_0(q.data(), blocks.data(), 128);
  EXPECT_TRUE(w.add_tensor("w.q8", ggml_type::q8_0, {64, 2}, blocks.data(), 4 * sizeof(q8_0_block)).ok());
  return w.bytes();
}

TEST(GgufReader, RoundTripsEveryValueTypeAndTensorType) {
  const auto img = sample_image();
  exact_buffer buf(img.data(), img.size());
  auto f = gguf_file::parse(buf.data.get(), buf.size, "sample.gguf");
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->metadata().size(), 16u);
  EXPECT_EQ(f->find("t.u8")->u, 200u);
  EXPECT_EQ(f->find("t.i8")->i, -100);
  EXPECT_EQ(f->find("t.u16")->u, 60000u);
  EXPECT_EQ(f->find("t.i16")->i, -30000);
  EXPECT_EQ(f->find("t.u32")->u, 4000000000u);
  EXPECT_EQ(f->find("t.i32")->i, -2000000000);
  EXPECT_EQ(f->find("t.u64")->u, 1ull << 60);
  EXPECT_EQ(f->find("t.i64")->i, -(1ll << 60));
  EXPECT_EQ(f->find("t.f32")->f, 1.5);
  EXPECT_EQ(f->find("t.f64")->f, -2.25);
  EXPECT_EQ(*f->get_bool("t.bool", false), true);
  EXPECT_EQ(*f->get_string("t.str", ""), "héllo");
  const auto* strs = f->find("t.strs");
  ASSERT_EQ(strs->strings.size(), 3u);
  EXPECT_EQ(strs->strings[2], "ccc");
  EXPECT_EQ(strs->strings[1], "");
  EXPECT_EQ(f->find("t.f32s")->array_float(1), -1.0);
  EXPECT_EQ(f->find("t.i32s")->array_int(1), -8);
  EXPECT_EQ(*f->get_uint("missing", 42), 42u);

  ASSERT_EQ(f->tensors().size(), 4u);
  const auto* t = f->find_tensor("w.f32");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->ne[0], 5);
  EXPECT_EQ(t->ne[1], 3);
  EXPECT_EQ(t->n_bytes, 60u);
  std::vector<float> row(5);
  dequantize_row(t->type, t->data + 5 * 4, row.data(), 5);
  EXPECT_EQ(row[2], ramp(15, 1.0f)[7]);

  const auto* h = f->find_tensor("w.f16");
  std::vector<float> hv(7);
  dequantize_row(h->type, h->data, hv.data(), 7);
  EXPECT_EQ(hv[6], 0.5f);
  const auto* b = f->find_tensor("w.bf16");
  dequantize_row(b->type, b->data, hv.data(), 7);
  EXPECT_EQ(hv[5], 15.0f);

  const auto* q = f->find_tensor("w.q8");
  EXPECT_EQ(q->n_bytes, 4 * sizeof(q8_0_block));
  std::vector<float> qv(64);
  dequantize_row(q->type, q->data + 2 * sizeof(q8_0_block), qv.data(), 64);
  const auto ref = ramp(128, 0.1f);
  for (int i = 0; i < 64; ++i) EXPECT_NEAR(qv[i], ref[64 + i], 0.1 / 127 * 0.51) << i;
  for (const auto& ti : f->tensors()) EXPECT_EQ((ti.data - buf.data.get() - f->data_offset()) % 32, 0u);
}

TEST(GgufReader, HonoursGeneralAlignment) {
  const auto img = sample_image(64);
  exact_buffer buf(img.data(), img.size());
  auto f = gguf_file::parse(buf.data.get(), buf.size, "aligned.gguf");
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->data_offset() % 64, 0u);
  for (const auto& t : f->tensors()) EXPECT_EQ(t.offset % 64, 0u);
}

TEST(GgufReader, OpensAMappedFileAndNamesMissingOnes) {
  const std::string path = ::testing::TempDir() + "brigade_gguf_test_" + std::to_string(::getpid()) + ".gguf";
  gguf::writer w;
  w.add_string("general.architecture", "llama");
  std::vector<float> x{1, 2, 3, 4};
  ASSERT_TRUE(w.add_tensor("x", ggml_type::f32, {4}, x.data(), 16).ok());
  ASSERT_TRUE(w.write_file(path).ok());
  auto f = gguf_file::open(path);
  ASSERT_TRUE(f.ok()) << f.error().message();
  float v;
  std::memcpy(&v, f->find_tensor("x")->data + 12, 4);
  EXPECT_EQ(v, 4.0f);
  gguf_file moved = std::move(*f);
  EXPECT_EQ(moved.tensors().size(), 1u);
  std::remove(path.c_str());

  auto missing = gguf_file::open(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), errc::io);
  EXPECT_NE(missing.error().message().find(path), std::string::npos);
  EXPECT_NE(missing.error().message().find("No such file"), std::string::npos);

  auto dir = gguf_file::open(::testing::TempDir());
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.error().message().find("not a regular file"), std::string::npos);
}

TEST(GgufReader, RejectsEveryTruncation) {
  const auto img = sample_image();
  for (size_t n = 0; n < img.size(); ++n) {
    exact_buffer buf(img.data(), n);
    auto f = gguf_file::parse(buf.data.get(), buf.size, "cut.gguf");
    ASSERT_FALSE(f.ok()) << "a file cut to " << n << " of " << img.size() << " bytes was accepted";
    EXPECT_EQ(f.error().code(), errc::malformed) << n;
    EXPECT_EQ(f.error().message().rfind("cut.gguf: ", 0), 0u) << f.error().message();
  }
}

/// Every byte overwritten with several values: the reader must either accept
/// the file with all tensors inside the buffer, or reject it; never crash or
/// read outside (ASan).
TEST(GgufReader, SurvivesEverySingleByteCorruption) {
  const auto img = sample_image();
  std::mt19937 rng(1234);
  size_t rejected = 0;
  for (size_t pos = 0; pos < img.size(); ++pos) {
    for (unsigned v : {0x00u, 0xFFu, 0x7Fu, 0x80u, static_cast<unsigned>(rng() & 0xFF)}) {
      auto bad = img;
      bad[pos] = static_cast<unsigned char>(v);
      exact_buffer buf(bad.data(), bad.size());
      auto f = gguf_file::parse(buf.data.get(), buf.size, "corrupt.gguf");
      if (!f.ok()) {
        ++rejected;
        EXPECT_FALSE(f.error().message().empty());
        continue;
      }
      for (const auto& t : f->tensors()) {
        ASSERT_GE(t.data, buf.data.get());
        ASSERT_LE(t.data + t.n_bytes, buf.data.get() + buf.size) << "tensor outside the file at pos " << pos;
      }
    }
  }
  EXPECT_GT(rejected, img.size());  // header corruption is caught, not only data corruption
}

/// Hand-assembled images for specific malformations.
struct image {
  std::vector<unsigned char> b;
  image& raw(const void* p, size_t n) {
    b.insert(b.end(), static_cast<const unsigned char*>(p), static_cast<const unsigned char*>(p) + n);
    return *this;
  }
  image& u32(uint32_t v) { return raw(&v, 4); }
  image& u64(uint64_t v) { return raw(&v, 8); }
  image& str(std::string_view s) { return u64(s.size()).raw(s.data(), s.size()); }
  image& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    return raw("GGUF", 4).u32(version).u64(n_tensors).u64(n_kv);
  }
  image& pad_to(size_t align) {
    b.resize((b.size() + align - 1) / align * align, 0);
    return *this;
  }
};

status parse_error(const image& img) {
  exact_buffer buf(img.b.data(), img.b.size());
  auto f = gguf_file::parse(buf.data.get(), buf.size, "bad.gguf");
  return f.ok() ? status{} : f.error();
}

void expect_error(const image& img, errc code, const std::string& words) {
  const status s = parse_error(img);
  ASSERT_FALSE(s.ok()) << "accepted; expected: " << words;
  EXPECT_EQ(s.code(), code) << s.message();
  EXPECT_NE(s.message().find(words), std::string::npos) << s.message();
  EXPECT_EQ(s.message().rfind("bad.gguf: ", 0), 0u) << s.message();
}

TEST(GgufReader, NamesTheProblemInMalformedHeaders) {
  expect_error(image{}.raw("GGML", 4).u32(3).u64(0).u64(0), errc::malformed, "bad magic");
  expect_error(image{}.header(0, 0, 1), errc::unsupported, "version 1 is not supported");
  expect_error(image{}.header(0, 0, 4), errc::unsupported, "unknown GGUF version 4");
  expect_error(image{}.header(0, 0, 0x03000000), errc::unsupported, "big-endian");
  expect_error(image{}.raw("GG", 2), errc::malformed, "too short");
  expect_error(image{}.header(0, 1ull << 60), errc::malformed, "more than the file can hold");
  expect_error(image{}.header(1ull << 62, 0), errc::malformed, "more than the file can hold");
}

TEST(GgufReader, NamesTheProblemInMalformedMetadata) {
  expect_error(image{}.header(0, 1).str("k").u32(99).u32(0), errc::malformed, "unknown value type 99");
  expect_error(image{}.header(0, 1).str("k").u32(8).u64(1ull << 40).raw("abc", 3), errc::malformed,
               "runs past the end");
  expect_error(image{}.header(0, 1).str("k").u32(9).u32(4).u64(1ull << 50).u32(1), errc::malformed, "does not fit");
  expect_error(image{}.header(0, 1).str("k").u32(9).u32(13).u64(1).u32(0), errc::malformed,
               "unknown array element type");
  expect_error(image{}.header(0, 1).str("k").u32(7).raw("\x02", 1), errc::malformed, "neither 0 nor 1");
  expect_error(image{}.header(0, 2).str("k").u32(4).u32(1).str("k").u32(4).u32(2), errc::malformed,
               "duplicate metadata key 'k'");
  expect_error(image{}.header(0, 1).str("").u32(4).u32(1), errc::malformed, "is empty");
  expect_error(image{}.header(0, 1).str("general.alignment").u32(4).u32(48), errc::malformed, "not a power of two");
  expect_error(image{}.header(0, 1).str("general.alignment").u32(10).u64(32), errc::malformed, "must be a uint32");
  // arrays nested five deep
  image deep;
  deep.header(0, 1).str("k").u32(9);
  for (int i = 0; i < 5; ++i) deep.u32(9).u64(1);
  deep.u32(4).u64(0);
  expect_error(deep, errc::malformed, "nested deeper");
}

image one_tensor(uint32_t n_dims, std::vector<uint64_t> ne, uint32_t type, uint64_t offset, size_t data_bytes) {
  image img;
  img.header(1, 0).str("t").u32(n_dims);
  for (uint64_t d : ne) img.u64(d);
  img.u32(type).u64(offset).pad_to(32);
  img.b.resize(img.b.size() + data_bytes, 0);
  return img;
}

TEST(GgufReader, NamesTheProblemInMalformedTensors) {
  ASSERT_TRUE(parse_error(one_tensor(1, {8}, 0, 0, 32)).ok());
  expect_error(one_tensor(1, {8}, 0, 0, 31), errc::malformed, "run past the end of the file");
  expect_error(one_tensor(1, {8}, 0, 32, 40), errc::malformed, "run past the end of the file");
  expect_error(one_tensor(1, {8}, 0, 1ull << 63, 32), errc::malformed, "run past the end");
  expect_error(one_tensor(1, {8}, 0, ~0ull - 31, 32), errc::malformed, "run past the end");
  expect_error(one_tensor(1, {8}, 0, 16, 64), errc::malformed, "not aligned to 32");
  expect_error(one_tensor(1, {8}, 99, 0, 32), errc::malformed, "unknown tensor type 99");
  expect_error(one_tensor(1, {256}, 12, 0, 1024), errc::unsupported, "Q4_K is not supported");
  expect_error(one_tensor(1, {40}, 8, 0, 64), errc::malformed, "not a multiple of the Q8_0 block size 32");
  expect_error(one_tensor(5, {1, 1, 1, 1, 1}, 0, 0, 4), errc::malformed, "5 dimensions");
  expect_error(one_tensor(1, {0}, 0, 0, 4), errc::malformed, "out of range");
  expect_error(one_tensor(4, {1u << 20, 1u << 20, 1u << 20, 1}, 0, 0, 4), errc::malformed, "absurdly large");
  // 2^40 * 2^40 * 2^40 * 2^8 wraps even a 128-bit product to 0 bytes.
  expect_error(one_tensor(4, {1ull << 40, 1ull << 40, 1ull << 40, 1u << 8}, 0, 0, 4), errc::malformed,
               "absurdly large");
  image dup;
  dup.header(2, 0).str("t").u32(1).u64(8).u32(0).u64(0).str("t").u32(1).u64(8).u32(0).u64(32).pad_to(32);
  dup.b.resize(dup.b.size() + 64, 0);
  expect_error(dup, errc::malformed, "duplicate tensor name 't'");
  image longname;
  longname.header(1, 0).str(std::string(64, 'x')).u32(1).u64(8).u32(0).u64(0).pad_to(32);
  longname.b.resize(longname.b.size() + 32);
  expect_error(longname, errc::malformed, "name must be 1 to 63 bytes");
}

TEST(GgufReader, TypedGettersNameTheKeyAndTypes) {
  image img;
  img.header(0, 1).str("general.name").u32(4).u32(7);
  exact_buffer buf(img.b.data(), img.b.size());
  auto f = gguf_file::parse(buf.data.get(), buf.size, "typed.gguf");
  ASSERT_TRUE(f.ok());
  auto s = f->get_string("general.name", "");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "typed.gguf: key 'general.name' should be a string, not uint32");
  auto arr = f->get_array("tokenizer.ggml.tokens", value_type::string);
  ASSERT_FALSE(arr.ok());
  EXPECT_EQ(arr.error().code(), errc::not_found);
}

TEST(GgufTypes, HalfAndBfloatConversionsRoundTrip) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_f16(f), h) << std::hex << h;
  }
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);            // rounds to inf
  EXPECT_EQ(f32_to_f16(1.0f + 1.0f / 2048), 0x3c00);  // tie to even
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  for (uint32_t b = 0; b < 0x10000; b += 7) {
    const float f = bf16_to_f32(static_cast<uint16_t>(b));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_bf16(f), b);
  }
}

}  // namespace
}  // namespace brigade
