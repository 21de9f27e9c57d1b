// HDF5 files (io/hdf5.h): tensors as datasets, scalar attributes, groups, and
// the errors a missing, foreign, truncated or corrupt file gives.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/hdf5.h"
#include "nn/layers.h"
#include "tensor/ops.h"
#include "tests/test_util.h"

using namespace heed;
using Catch::Contains;
namespace fs = std::filesystem;
using heed::test::TempDir;

namespace {

Tensor counting_flat(const Shape& shape, DType dtype);
// Distinct values in `dtype` (bool: a pattern), shaped (rank 0 too).
Tensor counting(const Shape& shape, DType dtype) {
  return reshape(counting_flat(shape, dtype), shape);
}

Tensor counting_flat(const Shape& shape, DType dtype) {
  int64_t n = numel_of(shape);
  switch (dtype) {
    case DType::Float32: {
      std::vector<float> v(n);
      for (int64_t i = 0; i < n; ++i) v[i] = 0.5f * i - 3.25f;
      return from_vector<float>(v);
    }
    case DType::Float64: {
      std::vector<double> v(n);
      for (int64_t i = 0; i < n; ++i) v[i] = 1e-3 * i - 1.0 / 3.0;
      return from_vector<double>(v);
    }
    case DType::Int64: {
      std::vector<int64_t> v(n);
      for (int64_t i = 0; i < n; ++i) v[i] = (i % 2 ? -1 : 1) * (i * 1000003LL + (int64_t{1} << 40));
      return from_vector<int64_t>(v);
    }
    case DType::UInt8: {
      std::vector<uint8_t> v(n);
      for (int64_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 37 + 1);
      return from_vector<uint8_t>(v);
    }
    case DType::Bool: {
      std::vector<uint8_t> v(n);
      for (int64_t i = 0; i < n; ++i) v[i] = i % 3 == 0;
      return to_dtype(from_vector<uint8_t>(v), DType::Bool);
    }
    case DType::BFloat16: {  // exact in bf16: halves from -3.25 up to 60
      std::vector<bfloat16> v(n);
      for (int64_t i = 0; i < n; ++i) v[i] = 0.5f * static_cast<float>(i % 128) - 3.25f;
      return from_vector<bfloat16>(v);
    }
  }
  return Tensor();
}

// Same dtype, shape and bytes.
void require_same(const Tensor& got, const Tensor& want) {
  REQUIRE(got.dtype() == want.dtype());
  REQUIRE(got.shape() == want.shape());
  // (heed's is_contiguous() says false for some zero-element shapes: not asked there.)
  if (got.numel() > 0) REQUIRE(got.is_contiguous());
  dispatch_dtype(want.dtype(), [&](auto t) {
    using T = decltype(t);
    REQUIRE(got.to_vector<T>() == want.to_vector<T>());
  });
}

std::string fixture(const std::string& name) { return std::string(HEED_TEST_DATA_DIR) + "/" + name; }
}  // namespace

TEST_CASE("hdf5: every dtype at ranks 0 to 4 round-trips with its shape", "[hdf5]") {
  TempDir dir;
  const std::string path = dir.file("roundtrip.h5");
  const std::vector<DType> dtypes{DType::Float32, DType::Float64, DType::BFloat16, DType::Int64, DType::UInt8,
                                  DType::Bool};
  const std::vector<Shape> shapes{{}, {5}, {2, 3}, {2, 1, 4}, {3, 2, 1, 2}, {2, 0, 3}};
  {
    io::h5::File f = io::h5::File::create(path);
    for (DType dt : dtypes)
      for (size_t s = 0; s < shapes.size(); ++s)
        f.write(fmt::format("{}/rank{}_{}", dtype_name(dt), shapes[s].size(), s), counting(shapes[s], dt));
  }
  io::h5::File f = io::h5::File::open(path);
  for (DType dt : dtypes)
    for (size_t s = 0; s < shapes.size(); ++s) {
      std::string name = fmt::format("{}/rank{}_{}", dtype_name(dt), shapes[s].size(), s);
      INFO(name);
      REQUIRE(f.dtype(name) == dt);
      REQUIRE(f.shape(name) == shapes[s]);
      require_same(f.read(name), counting(shapes[s], dt));
      require_same(f.read(name, dt), counting(shapes[s], dt));
    }
}

TEST_CASE("hdf5: writes copy non-contiguous, graph-attached tensors", "[hdf5]") {
  TempDir dir;
  io::h5::File f = io::h5::File::create(dir.file("views.h5"));
  Tensor base = counting({3, 4}, DType::Float32);
  base.requires_grad_();
  Tensor t = transpose(base * 2.0, 0, 1);  // [4, 3], not contiguous, has a grad_fn
  f.write("t", t);
  require_same(f.read("t"), contiguous(t.detach()));
}

TEST_CASE("hdf5: dotted names are single datasets, parents are created, groups are listed", "[hdf5]") {
  TempDir dir;
  io::h5::File f = io::h5::File::create(dir.file("groups.h5"));
  f.write("params/encoder.layers.0.norm1.weight", ones({4}));
  f.write("/params/b", zeros({2}));
  f.write("outputs/params/w", zeros({2, 2}));
  f.create_group("empty");
  f.create_group("empty");  // already there: fine

  REQUIRE(f.exists("params/encoder.layers.0.norm1.weight"));
  REQUIRE_FALSE(f.exists("params/encoder"));
  REQUIRE(f.exists("/"));
  REQUIRE(f.exists("/outputs/params/"));
  REQUIRE_FALSE(f.exists("nothing/here"));
  REQUIRE_FALSE(f.exists("params/b/below_a_dataset"));
  REQUIRE(f.is_group("outputs/params"));
  REQUIRE_FALSE(f.is_group("params/b"));
  REQUIRE(f.is_dataset("params/b"));
  REQUIRE_FALSE(f.is_dataset("missing"));

  std::vector<io::h5::Member> root = f.list();
  REQUIRE(root.size() == 3);
  REQUIRE(root[0].name == "empty");
  REQUIRE(root[1].name == "outputs");
  REQUIRE(root[2].name == "params");
  REQUIRE(root[2].kind == io::h5::ObjectKind::Group);
  std::vector<io::h5::Member> params = f.list("params");
  REQUIRE(params.size() == 2);
  REQUIRE(params[0].name == "b");
  REQUIRE(params[1].name == "encoder.layers.0.norm1.weight");
  REQUIRE(params[1].kind == io::h5::ObjectKind::Dataset);
  REQUIRE(f.list("empty").empty());

  REQUIRE(f.list_datasets("/") ==
          std::vector<std::string>{"outputs/params/w", "params/b", "params/encoder.layers.0.norm1.weight"});
  REQUIRE(f.list_datasets("outputs") == std::vector<std::string>{"params/w"});
  REQUIRE(f.list_datasets("empty").empty());

  f.remove("params/b");
  REQUIRE_FALSE(f.exists("params/b"));
  f.write("params/b", ones({3}));  // replaced after removal
  REQUIRE(f.shape("params/b") == Shape{3});
}

TEST_CASE("hdf5: attributes of each type on the root and on objects", "[hdf5]") {
  TempDir dir;
  const std::string path = dir.file("attrs.h5");
  {
    io::h5::File f = io::h5::File::create(path);
    f.write("inputs/x", zeros({2}));
    f.write_attr_int("/", "nhead", 4);
    f.write_attr_int("", "big", -(int64_t{1} << 50));
    f.write_attr_double("/", "eps", 1e-5);
    f.write_attr_string("/", "op", "layer_norm");
    f.write_attr_string("/", "empty", "");
    f.write_attr_string("/", "utf8", "caf\xc3\xa9 \xe2\x88\x9a");
    f.write_attr_double("inputs/x", "scale", 0.125);
    f.write_attr_int("inputs", "count", 1);
    f.write_attr_int("/", "nhead", 8);  // replaces
    f.flush();
  }
  io::h5::File f = io::h5::File::open(path, io::h5::Mode::ReadWrite);
  REQUIRE(f.read_attr_int("/", "nhead") == 8);
  REQUIRE(f.read_attr_int("/", "big") == -(int64_t{1} << 50));
  REQUIRE(f.read_attr_double("/", "eps") == 1e-5);
  REQUIRE(f.read_attr_double("/", "nhead") == 8.0);  // integers read as numbers too
  REQUIRE(f.read_attr_string("/", "op") == "layer_norm");
  REQUIRE(f.read_attr_string("/", "empty").empty());
  REQUIRE(f.read_attr_string("/", "utf8") == "caf\xc3\xa9 \xe2\x88\x9a");
  REQUIRE(f.read_attr_double("inputs/x", "scale") == 0.125);
  REQUIRE(f.read_attr_int("/inputs", "count") == 1);
  REQUIRE(f.attr_names("/") == std::vector<std::string>{"big", "empty", "eps", "nhead", "op", "utf8"});
  REQUIRE(f.attr_names("inputs/x") == std::vector<std::string>{"scale"});
  REQUIRE(f.has_attr("/", "eps"));
  REQUIRE_FALSE(f.has_attr("/", "nope"));
  REQUIRE(f.attr_type("/", "nhead") == io::h5::AttrType::Int);
  REQUIRE(f.attr_type("/", "eps") == io::h5::AttrType::Float);
  REQUIRE(f.attr_type("/", "op") == io::h5::AttrType::String);
  // Opened read-write: more can be added.
  f.write_attr_string("inputs/x", "note", "added later");
  REQUIRE(f.read_attr_string("inputs/x", "note") == "added later");
}

TEST_CASE("hdf5: reads what h5py writes (bool, big-endian, fixed-length strings)", "[hdf5]") {
  // tests/data/h5py_types.h5 is made by tests/data/make_h5py_types.py.
  io::h5::File f = io::h5::File::open(fixture("h5py_types.h5"));
  Tensor b = f.read("bool", DType::Bool);
  REQUIRE(b.shape() == Shape{2, 3});
  REQUIRE(to_dtype(b, DType::UInt8).to_vector<uint8_t>() == std::vector<uint8_t>{1, 0, 1, 0, 0, 1});
  REQUIRE(f.read("float32_big_endian").to_vector<float>() == std::vector<float>{1.5f, -2.0f});
  REQUIRE(f.read_attr_string("/", "vlen") == "variable length");
  REQUIRE(f.read_attr_string("/", "fixed_nullpad") == "fixed");
  REQUIRE(f.read_attr_string("/", "fixed_utf8") == "caf\xc3\xa9");
  REQUIRE(f.read_attr_int("/", "int") == -7);
  REQUIRE(f.read_attr_int("/", "int32") == 12);
  REQUIRE(f.read_attr_double("/", "float") == 0.25);
}

TEST_CASE("hdf5: a missing, foreign or unreadable file is an error naming it", "[hdf5]") {
  TempDir dir;
  const std::string missing = dir.file("missing.h5");
  REQUIRE_THROWS_WITH(io::h5::File::open(missing), Contains(missing) && Contains("no such file"));
  REQUIRE_THROWS_WITH(io::h5::File::open(dir.path.string()), Contains("is a directory"));

  const std::string text = dir.file("text.h5");
  std::ofstream(text) << "this is not HDF5, only a text file long enough to hold a superblock\n";
  REQUIRE_THROWS_WITH(io::h5::File::open(text), Contains(text) && Contains("not an HDF5 file"));

  REQUIRE_THROWS_WITH(io::h5::File::create(dir.file("no/such/folder/x.h5")),
                      Contains("no/such/folder/x.h5") && Contains("cannot create"));
}

TEST_CASE("hdf5: a truncated file gives errors, never a crash", "[hdf5]") {
  TempDir dir;
  const std::string path = dir.file("truncated.h5");
  {
    io::h5::File f = io::h5::File::create(path);
    f.write_attr_string("/", "op", "linear");
    f.write("inputs/x", counting({64, 64}, DType::Float32));
    f.write("params/weight", counting({64, 64}, DType::Float64));
  }
  const auto full = fs::file_size(path);
  // Cut the file at several points; each open or read must throw heed::Error
  // naming the file (the cut drops data the superblock says is there).
  for (double fraction : {0.9, 0.5, 0.1, 0.01}) {
    fs::copy_file(path, dir.file("cut.h5"), fs::copy_options::overwrite_existing);
    fs::resize_file(dir.file("cut.h5"), static_cast<uintmax_t>(full * fraction));
    INFO("kept " << fraction << " of " << full << " bytes");
    auto read_all = [&] {
      io::h5::File f = io::h5::File::open(dir.file("cut.h5"));
      f.read("inputs/x");
      f.read("params/weight");
    };
    REQUIRE_THROWS_WITH(read_all(), Contains(dir.file("cut.h5")));
  }
}

TEST_CASE("hdf5: flipped bytes give errors or data, never a crash", "[hdf5]") {
  TempDir dir;
  const std::string path = dir.file("good.h5");
  {
    io::h5::File f = io::h5::File::create(path);
    f.write_attr_string("/", "op", "linear");
    f.write_attr_double("/", "rtol", 1e-4);
    f.write("inputs/x", counting({4, 8}, DType::Float32));
    f.write("inputs/mask", counting({8}, DType::Bool));
    f.write("params/w.weight", counting({3, 2}, DType::Int64));
  }
  std::vector<char> bytes(fs::file_size(path));
  std::ifstream(path, std::ios::binary).read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  const std::string bad = dir.file("flipped.h5");
  int errors = 0, survived = 0;
  // Every 3rd byte of the metadata (the first 2 KiB), each flipped on its own.
  for (size_t at = 0; at < std::min<size_t>(bytes.size(), 2048); at += 3) {
    std::vector<char> copy = bytes;
    copy[at] = static_cast<char>(~copy[at]);
    std::ofstream(bad, std::ios::binary | std::ios::trunc).write(copy.data(), static_cast<std::streamsize>(copy.size()));
    try {
      io::h5::File f = io::h5::File::open(bad);
      for (const std::string& name : f.list_datasets("/")) f.read(name);
      for (const std::string& name : f.attr_names("/")) f.attr_type("/", name);
      ++survived;
    } catch (const Error& e) {
      REQUIRE_THAT(e.what(), Contains(bad));
      ++errors;
    }
  }
  INFO(errors << " corrupt copies failed cleanly, " << survived << " still read");
  REQUIRE(errors > 0);
}

TEST_CASE("hdf5: a missing object, wrong kind or wrong type is an error naming it", "[hdf5]") {
  TempDir dir;
  const std::string path = dir.file("errors.h5");
  io::h5::File f = io::h5::File::create(path);
  f.write("inputs/ids", counting({2, 3}, DType::Int64));
  f.write_attr_string("/", "op", "embedding");
  f.write_attr_double("/", "eps", 0.5);
  f.write_attr_int("/", "dim", -1);

  REQUIRE_THROWS_WITH(f.read("inputs/y"), Contains(path) && Contains("/inputs/y") && Contains("not found"));
  REQUIRE_THROWS_WITH(f.read("nothing/at/all"), Contains("/nothing/at/all") && Contains("not found"));
  REQUIRE_THROWS_WITH(f.read("inputs"), Contains("/inputs") && Contains("is a group, not a dataset"));
  REQUIRE_THROWS_WITH(f.read("inputs/ids", DType::Float32),
                      Contains("/inputs/ids") && Contains("is int64, expected float32"));
  REQUIRE_THROWS_WITH(f.list("inputs/ids"), Contains("/inputs/ids") && Contains("is not a group"));
  REQUIRE_THROWS_WITH(f.list("outputs"), Contains("/outputs") && Contains("not found"));
  REQUIRE_THROWS_WITH(f.write("inputs/ids", zeros({1})), Contains("/inputs/ids") && Contains("already exists"));
  REQUIRE_THROWS_WITH(f.write("inputs/ids/below", zeros({1})), Contains("/inputs/ids") && Contains("not a group"));
  REQUIRE_THROWS_WITH(f.write("nothing", Tensor()), Contains("undefined tensor"));
  REQUIRE_THROWS_WITH(f.remove("inputs/none"), Contains("/inputs/none") && Contains("not found"));

  REQUIRE_THROWS_WITH(f.read_attr_int("/", "missing"), Contains("/@missing") && Contains("attribute not found"));
  REQUIRE_THROWS_WITH(f.read_attr_int("/", "eps"), Contains("/@eps") && Contains("expected an integer"));
  REQUIRE_THROWS_WITH(f.read_attr_double("/", "op"), Contains("/@op") && Contains("expected a number"));
  REQUIRE_THROWS_WITH(f.read_attr_string("/", "dim"), Contains("/@dim") && Contains("expected a string"));
  REQUIRE_THROWS_WITH(f.read_attr_int("inputs/none", "x"), Contains("/inputs/none") && Contains("not found"));
  REQUIRE_THROWS_WITH(f.write_attr_string("/", "nul", std::string("a\0b", 3)), Contains("NUL"));

  f.close();
  REQUIRE_THROWS_WITH(f.read("inputs/ids"), Contains(path) && Contains("closed file"));
}

TEST_CASE("hdf5: unsupported stored types are named in the error", "[hdf5]") {
  io::h5::File f = io::h5::File::open(fixture("h5py_types.h5"));
  REQUIRE_THROWS_WITH(f.read("int32"), Contains("/int32") && Contains("unsupported dtype: signed integer of 4 byte(s)"));
  REQUIRE_THROWS_WITH(f.read("compound"), Contains("/compound") && Contains("unsupported dtype: compound"));
  REQUIRE_THROWS_WITH(f.read_attr_int("/", "vector"), Contains("/@vector") && Contains("is not a scalar (3 values)"));
  REQUIRE_THROWS_WITH(io::h5::File::open(fixture("h5py_types.h5"), io::h5::Mode::Read).write("x", zeros({1})),
                      Contains("h5py_types.h5") && Contains("/x"));
}

// ---- loading parameters by name (nn/module.h) ---------------------------------

TEST_CASE("load_parameters copies by dotted name and keeps the module's handles", "[hdf5][nn]") {
  nn::Linear lin({3, 2});
  Tensor& weight = lin.weight;
  Tensor w = counting({2, 3}, DType::Float64);  // converted to the parameter's float32
  nn::load_parameters(lin, {{"bias", full({2}, 0.5)}, {"weight", w}});
  REQUIRE(&weight == &lin.weight);
  REQUIRE(lin.weight.dtype() == DType::Float32);
  REQUIRE(lin.weight.requires_grad());
  REQUIRE(lin.weight.to_vector<float>() == to_dtype(w, DType::Float32).to_vector<float>());
  REQUIRE(lin.bias.to_vector<float>() == std::vector<float>{0.5f, 0.5f});
}

TEST_CASE("load_parameters lists missing, unexpected and mis-shaped names and changes nothing", "[hdf5][nn]") {
  nn::Linear lin({3, 2});
  std::vector<float> before = lin.weight.to_vector<float>();
  REQUIRE_THROWS_WITH(nn::load_parameters(lin, {{"weight", zeros({2, 3})}}),
                      Contains("Linear: load_parameters") && Contains("missing: bias"));
  REQUIRE_THROWS_WITH(nn::load_parameters(lin, {{"weight", zeros({2, 3})}, {"bias", zeros({2})}, {"extra", zeros({1})}}),
                      Contains("unexpected: extra"));
  REQUIRE_THROWS_WITH(nn::load_parameters(lin, {{"weight", zeros({3, 2})}, {"bias", zeros({2})}}),
                      Contains("wrong shape: weight (module [2, 3], given [3, 2])"));
  REQUIRE_THROWS_WITH(nn::load_parameters(lin, {{"weight", zeros({2, 3})}, {"bias", zeros({2})}, {"bias", zeros({2})}}),
                      Contains("given twice: bias"));
  REQUIRE(lin.weight.to_vector<float>() == before);
}

TEST_CASE("hdf5: fixed-length string attributes read back as written", "[hdf5]") {
  TempDir dir;
  const std::string path = dir.file("fixed.h5");
  {
    io::h5::File f = io::h5::File::create(path);
    f.write_attr_string("/", "text", "caf\xc3\xa9 with spaces  ", io::h5::StringLayout::Fixed);
    f.write_attr_string("/", "empty", "", io::h5::StringLayout::Fixed);
    f.write_attr_string("/", "vlen", "v", io::h5::StringLayout::Variable);
    REQUIRE_THROWS_WITH(f.write_attr_string("/", "nul", std::string("a\0b", 3), io::h5::StringLayout::Fixed),
                        Contains("NUL"));
  }
  io::h5::File f = io::h5::File::open(path);
  REQUIRE(f.read_attr_string("/", "text") == "caf\xc3\xa9 with spaces  ");
  REQUIRE(f.read_attr_string("/", "empty").empty());
  REQUIRE(f.read_attr_string("/", "vlen") == "v");
  REQUIRE(f.attr_type("/", "text") == io::h5::AttrType::String);
}
