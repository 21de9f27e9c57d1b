#include "io/hdf5.h"

#include <hdf5.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <new>
#include <type_traits>
#include <utility>

#include "tensor/grad_mode.h"
#include "tensor/ops.h"

namespace heed::io::h5 {

static_assert(std::is_same<hid_t, int64_t>::value, "File keeps its hid_t in an int64_t");

namespace {

// HDF5 prints its error stack to stderr by default; heed reports errors as
// exceptions instead, so printing is switched off once for the process.
void silence_hdf5() {
  static const bool done = [] {
    H5open();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

// The innermost message of HDF5's current error stack (where the failure was
// first detected), then clears the stack. Empty when there is none.
std::string take_hdf5_detail() {
  std::string detail;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* err, void* data) -> herr_t {
        auto* out = static_cast<std::string*>(data);
        if (out->empty() && err->desc != nullptr && err->desc[0] != '\0') *out = err->desc;
        return 0;
      },
      &detail);
  H5Eclear2(H5E_DEFAULT);
  return detail;
}

// Owns one HDF5 identifier and closes it with the matching H5?close.
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*closer)(hid_t)) : id_(id), closer_(closer) {}
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, -1)), closer_(o.closer_) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, -1);
      closer_ = o.closer_;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  void reset() {
    if (id_ >= 0 && closer_ != nullptr) closer_(id_);
    id_ = -1;
  }
  hid_t id_ = -1;
  herr_t (*closer_)(hid_t) = nullptr;
};

// "", "/", "a/b/", "/a//b" -> "/", "/a/b": one spelling for messages and calls.
std::string normalize(const std::string& path) {
  std::string out;
  size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) out += "/" + path.substr(i, j - i);
    i = j;
  }
  return out.empty() ? "/" : out;
}

// The components of a normalized path ("/" has none).
std::vector<std::string> components(const std::string& normalized) {
  std::vector<std::string> parts;
  size_t i = 1;
  while (i < normalized.size()) {
    size_t j = normalized.find('/', i);
    if (j == std::string::npos) j = normalized.size();
    parts.push_back(normalized.substr(i, j - i));
    i = j + 1;
  }
  return parts;
}

std::string parent_of(const std::string& normalized) {
  size_t slash = normalized.rfind('/');
  return slash == 0 ? "/" : normalized.substr(0, slash);
}

// h5py's bool: an enum over int8 with FALSE = 0 and TRUE = 1.
Handle make_bool_type() {
  Handle t(H5Tenum_create(H5T_NATIVE_INT8), H5Tclose);
  int8_t no = 0, yes = 1;
  H5Tenum_insert(t.get(), "FALSE", &no);
  H5Tenum_insert(t.get(), "TRUE", &yes);
  return t;
}

// bfloat16 as HDF5 describes a float: 16 bits, sign at bit 15, 8 exponent
// bits at 7 (bias 127), 7 mantissa bits at 0. Stored as it is (exact, half
// float32's size); HDF5 converts it to any float type on read, so h5dump
// shows its values and h5py reads it exactly, as float32.
Handle make_bfloat16_type() {
  Handle t(H5Tcopy(H5T_IEEE_F32LE), H5Tclose);
  if (H5Tset_fields(t.get(), 15, 7, 8, 0, 7) < 0 || H5Tset_precision(t.get(), 16) < 0 ||
      H5Tset_size(t.get(), 2) < 0 || H5Tset_ebias(t.get(), 127) < 0)
    HEED_FAIL("h5: cannot make the bfloat16 datatype");
  return t;
}

bool is_bfloat16_type(hid_t type) {
  size_t spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0;
  if (H5Tget_class(type) != H5T_FLOAT || H5Tget_size(type) != 2) return false;
  if (H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize) < 0) return false;
  return spos == 15 && epos == 7 && esize == 8 && mpos == 0 && msize == 7 && H5Tget_ebias(type) == 127 &&
         H5Tget_order(type) == H5T_ORDER_LE;
}

bool is_h5py_bool(hid_t type) {
  if (H5Tget_class(type) != H5T_ENUM || H5Tget_size(type) != 1 || H5Tget_nmembers(type) != 2) return false;
  bool has_false = false, has_true = false;
  for (unsigned i = 0; i < 2; ++i) {
    char* name = H5Tget_member_name(type, i);
    int8_t value = -1;
    herr_t ok = H5Tget_member_value(type, i, &value);
    if (name != nullptr && ok >= 0) {
      has_false = has_false || (std::strcmp(name, "FALSE") == 0 && value == 0);
      has_true = has_true || (std::strcmp(name, "TRUE") == 0 && value == 1);
    }
    if (name != nullptr) H5free_memory(name);
  }
  return has_false && has_true;
}

// A few words on a stored type, for "unsupported" messages.
std::string describe_type(hid_t type) {
  size_t size = H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_INTEGER:
      return fmt::format("{} integer of {} byte(s)", H5Tget_sign(type) == H5T_SGN_NONE ? "unsigned" : "signed", size);
    case H5T_FLOAT: return fmt::format("float of {} byte(s)", size);
    case H5T_STRING: return "string";
    case H5T_ENUM: return fmt::format("enum of {} byte(s) (not h5py's bool)", size);
    case H5T_COMPOUND: return "compound";
    case H5T_ARRAY: return "array";
    case H5T_VLEN: return "variable-length sequence";
    case H5T_OPAQUE: return "opaque";
    case H5T_BITFIELD: return "bitfield";
    case H5T_REFERENCE: return "reference";
    default: return "unknown type";
  }
}

// The heed dtype of a stored type; false when heed has none for it.
bool dtype_of_type(hid_t type, DType& out) {
  size_t size = H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_FLOAT:
      if (size == 4) return out = DType::Float32, true;
      if (size == 8) return out = DType::Float64, true;
      if (is_bfloat16_type(type)) return out = DType::BFloat16, true;
      return false;
    case H5T_INTEGER: {
      H5T_sign_t sign = H5Tget_sign(type);
      if (size == 8 && sign == H5T_SGN_2) return out = DType::Int64, true;
      if (size == 1 && sign == H5T_SGN_NONE) return out = DType::UInt8, true;
      return false;
    }
    case H5T_ENUM:
      if (is_h5py_bool(type)) return out = DType::Bool, true;
      return false;
    default: return false;
  }
}

// The type heed's values have in memory, and the one they are stored as.
Handle memory_type(DType dtype) {
  switch (dtype) {
    case DType::Float32: return Handle(H5Tcopy(H5T_NATIVE_FLOAT), H5Tclose);
    case DType::Float64: return Handle(H5Tcopy(H5T_NATIVE_DOUBLE), H5Tclose);
    case DType::Int64: return Handle(H5Tcopy(H5T_NATIVE_INT64), H5Tclose);
    case DType::UInt8: return Handle(H5Tcopy(H5T_NATIVE_UINT8), H5Tclose);
    case DType::Bool: return make_bool_type();
    case DType::BFloat16: return make_bfloat16_type();
  }
  HEED_FAIL("h5: unknown dtype {}", static_cast<int>(dtype));
}

Handle file_type(DType dtype) {
  switch (dtype) {
    case DType::Float32: return Handle(H5Tcopy(H5T_IEEE_F32LE), H5Tclose);
    case DType::Float64: return Handle(H5Tcopy(H5T_IEEE_F64LE), H5Tclose);
    case DType::Int64: return Handle(H5Tcopy(H5T_STD_I64LE), H5Tclose);
    case DType::UInt8: return Handle(H5Tcopy(H5T_STD_U8LE), H5Tclose);
    case DType::Bool: return make_bool_type();
    case DType::BFloat16: return make_bfloat16_type();
  }
  HEED_FAIL("h5: unknown dtype {}", static_cast<int>(dtype));
}

Handle variable_string_type() {
  Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(t.get(), H5T_VARIABLE);
  H5Tset_cset(t.get(), H5T_CSET_UTF8);
  return t;
}

}  // namespace

// ---- errors ------------------------------------------------------------------
// Every message starts with the file and the object: "h5 'run/ckpt.h5' /params/w: ...".
namespace {
[[noreturn]] void fail(const std::string& file, const std::string& object, const std::string& what,
                       bool with_detail = true) {
  std::string detail = with_detail ? take_hdf5_detail() : std::string();
  if (detail.empty()) HEED_FAIL("h5 '{}' {}: {}", file, object, what);
  HEED_FAIL("h5 '{}' {}: {} (HDF5: {})", file, object, what, detail);
}
}  // namespace

// ---- opening and closing -----------------------------------------------------

namespace {
Handle file_access_plist() {
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  // Closing the file closes whatever is still open in it, so it is really closed.
  H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
  return fapl;
}
}  // namespace

File File::open(const std::string& path, Mode mode) {
  silence_hdf5();
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  HEED_CHECK(std::filesystem::exists(status), "h5 '{}': no such file", path);
  HEED_CHECK(!std::filesystem::is_directory(status), "h5 '{}': is a directory, not an HDF5 file", path);
  htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  if (is_hdf5 < 0) fail(path, "/", "cannot be read");
  if (is_hdf5 == 0) fail(path, "/", "not an HDF5 file (no HDF5 signature)", false);
  Handle fapl = file_access_plist();
  hid_t id = H5Fopen(path.c_str(), mode == Mode::Read ? H5F_ACC_RDONLY : H5F_ACC_RDWR, fapl.get());
  if (id < 0)
    fail(path, "/", mode == Mode::Read ? "cannot open for reading (truncated or corrupt?)" : "cannot open for writing");
  return File(path, id);
}

namespace {
// Creation properties that keep an object's links and attributes in its own
// object header ("compact" storage) rather than moving them to a fractal heap
// and B-tree ("dense" storage) past 8 of them. The object header is
// checksummed; and HDF5 1.10.8 frees uninitialised pointers when a damaged
// dense group fails part-way through a listing (H5G__link_release_table), a
// crash no caller can catch. 65535 is the largest count HDF5 allows here.
// `klass` is H5P_FILE_CREATE (the root group), H5P_GROUP_CREATE or
// H5P_DATASET_CREATE.
Handle compact_plist(hid_t klass) {
  Handle plist(H5Pcreate(klass), H5Pclose);
  bool ok = plist.valid() && H5Pset_attr_phase_change(plist.get(), 65535, 65535) >= 0;
  if (klass != H5P_DATASET_CREATE) ok = ok && H5Pset_link_phase_change(plist.get(), 65535, 65535) >= 0;
  HEED_CHECK(ok, "h5: cannot set up compact storage ({})", take_hdf5_detail());
  return plist;
}
}  // namespace

File File::create(const std::string& path) {
  silence_hdf5();
  Handle fapl = file_access_plist();
  // The 1.8 file format checksums its metadata, so a corrupt file written by
  // heed is refused rather than misread; HDF5 and h5py since 1.8 read it.
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST);
  Handle fcpl = compact_plist(H5P_FILE_CREATE);
  hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get());
  if (id < 0) fail(path, "/", "cannot create the file");
  return File(path, id);
}

File::File(File&& other) noexcept : path_(std::move(other.path_)), id_(std::exchange(other.id_, -1)) {}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    if (id_ >= 0) H5Fclose(id_);
    path_ = std::move(other.path_);
    id_ = std::exchange(other.id_, -1);
  }
  return *this;
}

File::~File() {
  if (id_ >= 0) H5Fclose(id_);
}

int64_t File::checked_id(const char* what) const {
  HEED_CHECK(id_ >= 0, "h5 '{}': {} on a closed file", path_, what);
  return id_;
}

void File::flush() {
  if (H5Fflush(checked_id("flush"), H5F_SCOPE_GLOBAL) < 0) fail(path_, "/", "flush failed");
}

void File::close() {
  if (id_ < 0) return;
  hid_t id = std::exchange(id_, -1);
  if (H5Fclose(id) < 0) fail(path_, "/", "close failed");
}

// ---- objects -------------------------------------------------------------------

bool File::exists(const std::string& object) const {
  hid_t fid = checked_id("exists");
  std::string path;
  for (const std::string& part : components(normalize(object))) {
    path += "/" + part;
    // H5Lexists fails (< 0) when a parent is missing or not a group.
    if (H5Lexists(fid, path.c_str(), H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
  }
  if (path.empty()) return true;  // the root
  htri_t there = H5Oexists_by_name(fid, path.c_str(), H5P_DEFAULT);  // false for a dangling soft link
  H5Eclear2(H5E_DEFAULT);
  return there > 0;
}

namespace {
// Opens an existing object of any kind, or throws "not found".
Handle open_object(hid_t fid, const std::string& file, const std::string& object, bool exists) {
  if (!exists) fail(file, object, "not found", false);
  Handle obj(H5Oopen(fid, object.c_str(), H5P_DEFAULT), H5Oclose);
  if (!obj.valid()) fail(file, object, "cannot open");
  return obj;
}

ObjectKind kind_of(hid_t obj) {
  switch (H5Iget_type(obj)) {
    case H5I_GROUP: return ObjectKind::Group;
    case H5I_DATASET: return ObjectKind::Dataset;
    default: return ObjectKind::Other;
  }
}
}  // namespace

bool File::is_group(const std::string& object) const {
  std::string p = normalize(object);
  if (!exists(p)) return false;
  return kind_of(open_object(checked_id("is_group"), path_, p, true).get()) == ObjectKind::Group;
}

bool File::is_dataset(const std::string& object) const {
  std::string p = normalize(object);
  if (!exists(p)) return false;
  return kind_of(open_object(checked_id("is_dataset"), path_, p, true).get()) == ObjectKind::Dataset;
}

std::vector<Member> File::list(const std::string& group) const {
  std::string p = normalize(group);
  Handle g = open_object(checked_id("list"), path_, p, exists(p));
  if (kind_of(g.get()) != ObjectKind::Group) fail(path_, p, "is not a group", false);
  std::vector<std::string> names;
  herr_t ok = H5Literate(
      g.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->emplace_back(name);
        return 0;
      },
      &names);
  if (ok < 0) fail(path_, p, "cannot list the members");
  std::vector<Member> members;
  for (const std::string& name : names) {
    Handle child(H5Oopen(g.get(), name.c_str(), H5P_DEFAULT), H5Oclose);
    ObjectKind kind = child.valid() ? kind_of(child.get()) : ObjectKind::Other;
    H5Eclear2(H5E_DEFAULT);
    members.push_back({name, kind});
  }
  return members;
}

std::vector<std::string> File::list_datasets(const std::string& group) const {
  // Depth-first; the depth bound stops a file whose groups link in a cycle.
  const int max_depth = 64;
  std::vector<std::string> out;
  std::function<void(const std::string&, const std::string&, int)> visit = [&](const std::string& abs,
                                                                                const std::string& rel, int depth) {
    if (depth > max_depth) fail(path_, abs, fmt::format("groups nested deeper than {} (a link cycle?)", max_depth), false);
    for (const Member& m : list(abs)) {
      std::string child_rel = rel.empty() ? m.name : rel + "/" + m.name;
      if (m.kind == ObjectKind::Dataset) out.push_back(child_rel);
      if (m.kind == ObjectKind::Group) visit(abs == "/" ? "/" + m.name : abs + "/" + m.name, child_rel, depth + 1);
    }
  };
  visit(normalize(group), "", 0);
  std::sort(out.begin(), out.end());
  return out;
}

void File::create_group(const std::string& group) {
  hid_t fid = checked_id("create_group");
  std::string p = normalize(group);
  std::string path;
  for (const std::string& part : components(p)) {
    path += "/" + part;
    if (exists(path)) {
      if (!is_group(path)) fail(path_, path, "exists and is not a group", false);
      continue;
    }
    Handle gcpl = compact_plist(H5P_GROUP_CREATE);
    Handle g(H5Gcreate2(fid, path.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose);
    if (!g.valid()) fail(path_, path, "cannot create the group");
  }
}

void File::remove(const std::string& object) {
  hid_t fid = checked_id("remove");
  std::string p = normalize(object);
  HEED_CHECK(p != "/", "h5 '{}' /: the root group cannot be removed", path_);
  // A dangling link is removable too, so ask about the link, not the object.
  if (!exists(parent_of(p)) || H5Lexists(fid, p.c_str(), H5P_DEFAULT) <= 0) fail(path_, p, "not found");
  if (H5Ldelete(fid, p.c_str(), H5P_DEFAULT) < 0) fail(path_, p, "cannot remove");
}

// ---- datasets --------------------------------------------------------------------

namespace {
struct DatasetInfo {
  Handle dataset;
  Handle type;
  DType dtype;
  Shape shape;
};

DatasetInfo open_dataset(hid_t fid, const std::string& file, const std::string& p, bool exists) {
  DatasetInfo info;
  info.dataset = open_object(fid, file, p, exists);
  if (kind_of(info.dataset.get()) != ObjectKind::Dataset) fail(file, p, "is a group, not a dataset", false);
  info.type = Handle(H5Dget_type(info.dataset.get()), H5Tclose);
  if (!info.type.valid()) fail(file, p, "cannot read the datatype");
  if (!dtype_of_type(info.type.get(), info.dtype))
    fail(file, p,
         fmt::format("unsupported dtype: {} (heed reads float32, float64, bfloat16, int64, uint8 and h5py bool)",
                     describe_type(info.type.get())),
         false);
  Handle space(H5Dget_space(info.dataset.get()), H5Sclose);
  if (!space.valid()) fail(file, p, "cannot read the dataspace");
  switch (H5Sget_simple_extent_type(space.get())) {
    case H5S_SCALAR: break;  // rank 0
    case H5S_SIMPLE: {
      int rank = H5Sget_simple_extent_ndims(space.get());
      if (rank < 0 || rank > H5S_MAX_RANK) fail(file, p, "cannot read the dataspace rank");
      std::vector<hsize_t> dims(static_cast<size_t>(rank));
      if (H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0) fail(file, p, "cannot read the dims");
      // Guards the allocation against absurd dims in a corrupt file.
      const uint64_t limit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / 16;
      uint64_t n = 1;
      for (hsize_t d : dims) {
        if (d != 0 && (d > limit || n > limit / d))
          fail(file, p, fmt::format("has a dataspace too large to read (a dim of {})", d), false);
        n *= d;
        info.shape.push_back(static_cast<int64_t>(d));
      }
      break;
    }
    default: fail(file, p, "has an empty (null) dataspace; heed reads scalar and simple ones", false);
  }
  return info;
}
}  // namespace

DType File::dtype(const std::string& dataset) const {
  std::string p = normalize(dataset);
  return open_dataset(checked_id("dtype"), path_, p, exists(p)).dtype;
}

Shape File::shape(const std::string& dataset) const {
  std::string p = normalize(dataset);
  return open_dataset(checked_id("shape"), path_, p, exists(p)).shape;
}

Tensor File::read(const std::string& dataset) const {
  std::string p = normalize(dataset);
  DatasetInfo info = open_dataset(checked_id("read"), path_, p, exists(p));
  Tensor t;
  try {
    t = empty(info.shape, info.dtype);
  } catch (const std::bad_alloc&) {
    fail(path_, p, fmt::format("cannot allocate {} {} values", shape_str(info.shape), dtype_name(info.dtype)), false);
  }
  if (t.numel() == 0) return t;
  Handle mem = memory_type(info.dtype);
  if (H5Dread(info.dataset.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw_data()) < 0)
    fail(path_, p, fmt::format("cannot read the {} {} values (truncated or corrupt file?)", shape_str(info.shape),
                               dtype_name(info.dtype)));
  if (info.dtype == DType::Bool) {
    // A bool byte must be 0 or 1; a corrupt enum value must not leak through.
    auto* bytes = static_cast<uint8_t*>(t.raw_data());
    for (int64_t i = 0; i < t.numel(); ++i) bytes[i] = bytes[i] == 1 ? 1 : 0;
  }
  return t;
}

Tensor File::read(const std::string& dataset, DType expected) const {
  std::string p = normalize(dataset);
  DType stored = open_dataset(checked_id("read"), path_, p, exists(p)).dtype;
  if (stored != expected)
    fail(path_, p, fmt::format("is {}, expected {}", dtype_name(stored), dtype_name(expected)), false);
  return read(p);
}

void File::write(const std::string& dataset, const Tensor& t) {
  hid_t fid = checked_id("write");
  std::string p = normalize(dataset);
  HEED_CHECK(p != "/", "h5 '{}' /: a dataset needs a name", path_);
  HEED_CHECK(t.defined(), "h5 '{}' {}: cannot write an undefined tensor", path_, p);
  if (exists(p)) fail(path_, p, "already exists (remove it first to replace it)", false);
  create_group(parent_of(p));
  Tensor host;
  {
    NoGradGuard no_grad;
    host = contiguous(to_device(t.detach(), kCPU));
  }
  const Shape& shape = host.shape();
  Handle space;
  if (shape.empty()) {
    space = Handle(H5Screate(H5S_SCALAR), H5Sclose);
  } else {
    std::vector<hsize_t> dims(shape.begin(), shape.end());
    space = Handle(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  }
  if (!space.valid()) fail(path_, p, fmt::format("cannot make a dataspace of shape {}", shape_str(shape)));
  Handle ftype = file_type(host.dtype());
  Handle dcpl = compact_plist(H5P_DATASET_CREATE);
  Handle dset(H5Dcreate2(fid, p.c_str(), ftype.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose);
  if (!dset.valid()) fail(path_, p, "cannot create the dataset");
  if (host.numel() == 0) return;
  Handle mem = memory_type(host.dtype());
  if (H5Dwrite(dset.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, host.raw_data()) < 0)
    fail(path_, p, fmt::format("cannot write the {} {} values", shape_str(shape), dtype_name(host.dtype())));
}

// ---- attributes --------------------------------------------------------------------

namespace {
// An open scalar attribute with its stored type.
struct AttrInfo {
  Handle attr;
  Handle type;
};

AttrInfo open_attr(hid_t obj, const std::string& file, const std::string& where) {
  AttrInfo info;
  size_t at = where.rfind('@');
  std::string name = where.substr(at + 1);
  htri_t there = H5Aexists(obj, name.c_str());
  if (there <= 0) fail(file, where, "attribute not found", there < 0);
  info.attr = Handle(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
  if (!info.attr.valid()) fail(file, where, "cannot open the attribute");
  info.type = Handle(H5Aget_type(info.attr.get()), H5Tclose);
  Handle space(H5Aget_space(info.attr.get()), H5Sclose);
  if (!info.type.valid() || !space.valid()) fail(file, where, "cannot read the attribute's type");
  if (H5Sget_simple_extent_npoints(space.get()) != 1)
    fail(file, where,
         fmt::format("is not a scalar ({} values); heed reads scalar attributes only",
                     H5Sget_simple_extent_npoints(space.get())),
         false);
  return info;
}

std::string attr_where(const std::string& object, const std::string& name) { return object + "@" + name; }
}  // namespace

std::vector<std::string> File::attr_names(const std::string& object) const {
  std::string p = normalize(object);
  Handle obj = open_object(checked_id("attr_names"), path_, p, exists(p));
  std::vector<std::string> names;
  hsize_t idx = 0;
  herr_t ok = H5Aiterate2(
      obj.get(), H5_INDEX_NAME, H5_ITER_INC, &idx,
      [](hid_t, const char* name, const H5A_info_t*, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->emplace_back(name);
        return 0;
      },
      &names);
  if (ok < 0) fail(path_, p, "cannot list the attributes");
  return names;
}

bool File::has_attr(const std::string& object, const std::string& name) const {
  std::string p = normalize(object);
  Handle obj = open_object(checked_id("has_attr"), path_, p, exists(p));
  htri_t there = H5Aexists(obj.get(), name.c_str());
  if (there < 0) fail(path_, attr_where(p, name), "cannot look up the attribute");
  return there > 0;
}

AttrType File::attr_type(const std::string& object, const std::string& name) const {
  std::string p = normalize(object);
  Handle obj = open_object(checked_id("attr_type"), path_, p, exists(p));
  AttrInfo a = open_attr(obj.get(), path_, attr_where(p, name));
  switch (H5Tget_class(a.type.get())) {
    case H5T_INTEGER: return AttrType::Int;
    case H5T_FLOAT: return AttrType::Float;
    case H5T_STRING: return AttrType::String;
    default: return AttrType::Other;
  }
}

int64_t File::read_attr_int(const std::string& object, const std::string& name) const {
  std::string p = normalize(object);
  std::string where = attr_where(p, name);
  Handle obj = open_object(checked_id("read_attr_int"), path_, p, exists(p));
  AttrInfo a = open_attr(obj.get(), path_, where);
  if (H5Tget_class(a.type.get()) != H5T_INTEGER)
    fail(path_, where, fmt::format("is a {}, expected an integer", describe_type(a.type.get())), false);
  int64_t value = 0;
  if (H5Aread(a.attr.get(), H5T_NATIVE_INT64, &value) < 0) fail(path_, where, "cannot read the integer");
  return value;
}

double File::read_attr_double(const std::string& object, const std::string& name) const {
  std::string p = normalize(object);
  std::string where = attr_where(p, name);
  Handle obj = open_object(checked_id("read_attr_double"), path_, p, exists(p));
  AttrInfo a = open_attr(obj.get(), path_, where);
  H5T_class_t cls = H5Tget_class(a.type.get());
  if (cls != H5T_FLOAT && cls != H5T_INTEGER)
    fail(path_, where, fmt::format("is a {}, expected a number", describe_type(a.type.get())), false);
  double value = 0;
  if (H5Aread(a.attr.get(), H5T_NATIVE_DOUBLE, &value) < 0) fail(path_, where, "cannot read the number");
  return value;
}

std::string File::read_attr_string(const std::string& object, const std::string& name) const {
  std::string p = normalize(object);
  std::string where = attr_where(p, name);
  Handle obj = open_object(checked_id("read_attr_string"), path_, p, exists(p));
  AttrInfo a = open_attr(obj.get(), path_, where);
  hid_t ftype = a.type.get();
  if (H5Tget_class(ftype) != H5T_STRING)
    fail(path_, where, fmt::format("is a {}, expected a string", describe_type(ftype)), false);
  htri_t variable = H5Tis_variable_str(ftype);
  if (variable < 0) fail(path_, where, "cannot read the string type");
  if (variable > 0) {
    // As h5py writes them: HDF5 allocates the text, we copy and free it.
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(ftype));
    char* text = nullptr;
    if (H5Aread(a.attr.get(), mem.get(), &text) < 0) fail(path_, where, "cannot read the string");
    std::string value = text != nullptr ? std::string(text) : std::string();
    if (text != nullptr) H5free_memory(text);
    return value;
  }
  // Fixed length: read the bytes as stored, then drop the padding.
  size_t size = H5Tget_size(ftype);
  if (size == 0 || size > (size_t{1} << 30)) fail(path_, where, fmt::format("has a string size of {}", size), false);
  std::vector<char> bytes(size, '\0');
  Handle mem(H5Tcopy(ftype), H5Tclose);
  if (H5Aread(a.attr.get(), mem.get(), bytes.data()) < 0) fail(path_, where, "cannot read the string");
  std::string value(bytes.data(), strnlen(bytes.data(), size));
  if (H5Tget_strpad(ftype) == H5T_STR_SPACEPAD)
    while (!value.empty() && value.back() == ' ') value.pop_back();
  return value;
}

namespace {
// Writes one scalar attribute, replacing an existing one of that name.
void write_attr(hid_t fid, const std::string& file, const std::string& object, bool object_exists,
                const std::string& name, hid_t ftype, hid_t mtype, const void* value) {
  std::string where = attr_where(object, name);
  HEED_CHECK(!name.empty(), "h5 '{}' {}: an attribute needs a name", file, object);
  Handle obj = open_object(fid, file, object, object_exists);
  htri_t there = H5Aexists(obj.get(), name.c_str());
  if (there < 0) fail(file, where, "cannot look up the attribute");
  if (there > 0 && H5Adelete(obj.get(), name.c_str()) < 0) fail(file, where, "cannot replace the attribute");
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(obj.get(), name.c_str(), ftype, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.valid()) fail(file, where, "cannot create the attribute");
  if (H5Awrite(attr.get(), mtype, value) < 0) fail(file, where, "cannot write the attribute");
}
}  // namespace

void File::write_attr_int(const std::string& object, const std::string& name, int64_t value) {
  std::string p = normalize(object);
  write_attr(checked_id("write_attr_int"), path_, p, exists(p), name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void File::write_attr_double(const std::string& object, const std::string& name, double value) {
  std::string p = normalize(object);
  write_attr(checked_id("write_attr_double"), path_, p, exists(p), name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

void File::write_attr_string(const std::string& object, const std::string& name, const std::string& value,
                             StringLayout layout) {
  std::string p = normalize(object);
  HEED_CHECK(value.find('\0') == std::string::npos,
             "h5 '{}' {}: a string attribute cannot hold a NUL character", path_, attr_where(p, name));
  if (layout == StringLayout::Variable) {
    Handle type = variable_string_type();
    const char* text = value.c_str();
    write_attr(checked_id("write_attr_string"), path_, p, exists(p), name, type.get(), type.get(), &text);
    return;
  }
  // Fixed length, NUL-padded (HDF5 has no zero-size string: "" is one NUL).
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), padded.size());
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  write_attr(checked_id("write_attr_string"), path_, p, exists(p), name, type.get(), type.get(), padded.data());
}

}  // namespace heed::io::h5
