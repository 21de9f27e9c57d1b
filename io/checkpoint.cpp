// Saving and loading checkpoints (io/checkpoint.h; docs/checkpoints.md gives
// the file layout). A checkpoint goes through an in-memory image of the file,
// every object by path with its attributes and data:
//
//   save:  Checkpoint -> Image -> HDF5 file (tmp, fsync, rename)
//   load:  HDF5 file -> Image (a generic walk) -> checked -> Checkpoint
//
// and the content checksum is computed from the image, so the writer, the
// reader and tools/import_torch.py agree on it by construction.
#include "io/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>
#include <utility>

#include "io/hdf5.h"
#include "tensor/ops.h"

namespace heed::io {

uint64_t fnv1a64(const void* data, size_t size, uint64_t hash) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    hash ^= bytes[i];
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

namespace {

constexpr const char* kFormat = "heed-checkpoint";
constexpr const char* kDataChecksum = "fnv1a64";             // on every dataset: its bytes
constexpr const char* kContentChecksum = "content_fnv1a64";  // on the root: everything else

// HDF5 attributes hold one int64, float64 or string.
struct Attr {
  h5::AttrType type = h5::AttrType::Other;
  int64_t i = 0;
  double f = 0;
  std::string s;
};
Attr int_attr(int64_t v) { return {h5::AttrType::Int, v, 0, {}}; }
Attr float_attr(double v) { return {h5::AttrType::Float, 0, v, {}}; }
Attr string_attr(std::string v) { return {h5::AttrType::String, 0, 0, std::move(v)}; }

struct Object {
  bool is_group = true;
  Tensor data;  // datasets: contiguous, on the CPU
  std::map<std::string, Attr> attrs;
};

// Every object by absolute path ("/", "/model", "/model/encoder.norm.weight").
using Image = std::map<std::string, Object>;

int64_t as_int64(uint64_t v) {
  int64_t out;
  std::memcpy(&out, &v, sizeof out);
  return out;
}
uint64_t as_uint64(int64_t v) {
  uint64_t out;
  std::memcpy(&out, &v, sizeof out);
  return out;
}

uint64_t data_checksum(const Tensor& t) {
  return fnv1a64(t.raw_data(), static_cast<size_t>(t.numel()) * dtype_size(t.dtype()));
}

// The content checksum: FNV-1a over the sorted records
//   "G <path>\n"                          every group
//   "D <path> <dtype> <d0,d1,...>\n"      every dataset
//   "A <path> <name> i <decimal>\n"       every attribute but the root's content_fnv1a64
//   "A <path> <name> f <16 hex digits of the IEEE-754 bits>\n"
//   "A <path> <name> s <byte length>:<bytes>\n"
// Datasets' bytes enter through their own fnv1a64 attribute, checked apart.
uint64_t content_checksum(const Image& image) {
  std::vector<std::string> records;
  for (const auto& [path, obj] : image) {
    if (obj.is_group) {
      records.push_back("G " + path + "\n");
    } else {
      std::vector<std::string> dims;
      for (int64_t d : obj.data.shape()) dims.push_back(std::to_string(d));
      records.push_back(fmt::format("D {} {} {}\n", path, dtype_name(obj.data.dtype()), fmt::join(dims, ",")));
    }
    for (const auto& [name, a] : obj.attrs) {
      if (path == "/" && name == kContentChecksum) continue;
      std::string head = "A " + path + " " + name + " ";
      switch (a.type) {
        case h5::AttrType::Int: records.push_back(head + "i " + std::to_string(a.i) + "\n"); break;
        case h5::AttrType::Float: {
          uint64_t bits;
          std::memcpy(&bits, &a.f, sizeof bits);
          records.push_back(head + fmt::format("f {:016x}\n", bits));
          break;
        }
        case h5::AttrType::String: records.push_back(head + "s " + std::to_string(a.s.size()) + ":" + a.s + "\n"); break;
        case h5::AttrType::Other: records.push_back(head + "?\n"); break;
      }
    }
  }
  std::sort(records.begin(), records.end());
  uint64_t hash = kFnv1a64Offset;
  for (const std::string& r : records) hash = fnv1a64(r.data(), r.size(), hash);
  return hash;
}

// ---- Checkpoint -> Image --------------------------------------------------------

// A name becomes one link in an HDF5 path or an attribute name.
void check_name(const std::string& what, const std::string& name) {
  HEED_CHECK(!name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
                 name.find('\0') == std::string::npos,
             "{} name '{}' cannot be stored: names must be non-empty, not '.' or '..', without '/' or NUL", what,
             name);
}

void add_dataset(Image& image, const std::string& path, const Tensor& t, const std::string& what) {
  HEED_CHECK(t.defined(), "{} is an undefined tensor", what);
  Object obj;
  obj.is_group = false;
  obj.data = contiguous(to_device(t.detach(), kCPU));
  obj.attrs[kDataChecksum] = int_attr(as_int64(data_checksum(obj.data)));
  HEED_CHECK(image.emplace(path, std::move(obj)).second, "{} is given twice", what);
}

Tensor bytes_tensor(const std::string& text) {
  return from_vector<uint8_t>(std::vector<uint8_t>(text.begin(), text.end()));
}

Image to_image(const Checkpoint& c) {
  Image image;
  for (const char* group : {"/", "/model", "/optimizer", "/optimizer/scalars", "/scheduler", "/scheduler/state",
                            "/rng", "/training", "/config", "/texts"})
    image[group] = Object{};
  Object& root = image["/"];
  root.attrs["format"] = string_attr(kFormat);
  root.attrs["format_version"] = int_attr(kCheckpointFormatVersion);
  root.attrs["created_by"] = string_attr("heed");

  for (const auto& [name, t] : c.model) {
    check_name("model tensor", name);
    add_dataset(image, "/model/" + name, t, fmt::format("model tensor '{}'", name));
  }
  image["/optimizer"].attrs["type"] = string_attr(c.optimizer_type);
  for (const auto& [name, t] : c.optimizer_tensors) {
    check_name("optimizer tensor", name);
    HEED_CHECK(name != "scalars", "optimizer tensor name 'scalars' is reserved (the group of optimizer scalars)");
    add_dataset(image, "/optimizer/" + name, t, fmt::format("optimizer tensor '{}'", name));
  }
  for (const auto& [key, v] : c.optimizer_scalars) {
    check_name("optimizer scalar", key);
    image["/optimizer/scalars"].attrs[key] = float_attr(v);
  }
  image["/scheduler"].attrs["type"] = string_attr(c.scheduler_type);
  for (const auto& [key, v] : c.scheduler_state) {
    check_name("scheduler state", key);
    image["/scheduler/state"].attrs[key] = float_attr(v);
  }
  image["/rng"].attrs["seed"] = int_attr(as_int64(c.rng_seed));
  image["/rng"].attrs["offset"] = int_attr(as_int64(c.rng_offset));
  for (const auto& [key, v] : c.training) {
    check_name("training", key);
    image["/training"].attrs[key] = int_attr(v);
  }
  for (const auto& [key, v] : c.config) {
    check_name("config", key);
    HEED_CHECK(v.find('\0') == std::string::npos, "config value of '{}' holds a NUL byte (store it in texts)", key);
    image["/config"].attrs[key] = string_attr(v);
  }
  for (const auto& [key, v] : c.texts) {
    check_name("text", key);
    add_dataset(image, "/texts/" + key, bytes_tensor(v), fmt::format("text '{}'", key));
  }
  add_dataset(image, "/history", from_vector<double>(c.history), "history");
  if (!c.averages.empty()) {  // optional: only a run with an exponential moving average has it
    image["/averages"] = Object{};
    image["/averages"].attrs["updates"] = int_attr(c.average_updates);
    for (const auto& [name, t] : c.averages) {
      check_name("average", name);
      add_dataset(image, "/averages/" + name, t, fmt::format("average '{}'", name));
    }
  } else {
    HEED_CHECK(c.average_updates == 0, "checkpoint: average_updates is {} but there are no averages", c.average_updates);
  }
  root.attrs[kContentChecksum] = int_attr(as_int64(content_checksum(image)));
  return image;
}

void write_image(h5::File& f, const Image& image) {
  for (const auto& [path, obj] : image) {
    if (obj.is_group)
      f.create_group(path);
    else
      f.write(path, obj.data);
    for (const auto& [name, a] : obj.attrs) {
      switch (a.type) {
        case h5::AttrType::Int: f.write_attr_int(path, name, a.i); break;
        case h5::AttrType::Float: f.write_attr_double(path, name, a.f); break;
        // Fixed-length: the text stays in the checksummed object header.
        case h5::AttrType::String: f.write_attr_string(path, name, a.s, h5::StringLayout::Fixed); break;
        case h5::AttrType::Other: HEED_FAIL("internal: attribute {}@{} has no type", path, name);
      }
    }
  }
}

// ---- durability ------------------------------------------------------------------

std::string errno_text() { return std::strerror(errno); }

// fsync through a descriptor of its own (HDF5 has closed the file by then).
void fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  HEED_CHECK(fd >= 0, "cannot open '{}' to fsync it: {}", path, errno_text());
  int rc = ::fsync(fd);
  std::string why = rc == 0 ? "" : errno_text();
  ::close(fd);
  HEED_CHECK(rc == 0, "fsync of '{}' failed: {}", path, why);
}

std::string folder_of(const std::string& path) {
  std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

}  // namespace

void save_checkpoint(const std::string& path, const Checkpoint& ckpt) {
  Image image;
  try {
    image = to_image(ckpt);
  } catch (const Error& e) {
    HEED_FAIL("save_checkpoint '{}': {}", path, e.what());
  }
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  bool renamed = false;
  try {
    {
      h5::File f = h5::File::create(tmp);
      write_image(f, image);
      f.close();  // flushes everything HDF5 holds
    }
    fsync_path(tmp, false);
    HEED_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename '{}' to '{}': {}", tmp, path,
               errno_text());
    renamed = true;
    // The rename itself is durable once the folder's entry is on disk.
    fsync_path(folder_of(path), true);
  } catch (const Error& e) {
    if (!renamed) std::remove(tmp.c_str());
    HEED_FAIL("save_checkpoint '{}': {}", path, e.what());
  }
}

// ---- load -----------------------------------------------------------------------

namespace {

// Reads every group, dataset and attribute. A part that cannot be read is a
// problem (the walk goes on); a file that cannot be opened throws.
Image read_image(const h5::File& f, std::vector<std::string>& problems) {
  Image image;
  auto read_attrs = [&](const std::string& path, Object& obj) {
    for (const std::string& name : f.attr_names(path)) {
      try {
        Attr a;
        a.type = f.attr_type(path, name);
        switch (a.type) {
          case h5::AttrType::Int: a.i = f.read_attr_int(path, name); break;
          case h5::AttrType::Float: a.f = f.read_attr_double(path, name); break;
          case h5::AttrType::String: a.s = f.read_attr_string(path, name); break;
          case h5::AttrType::Other: problems.push_back(fmt::format("attribute {}@{} has an unsupported type", path, name));
        }
        obj.attrs[name] = std::move(a);
      } catch (const Error& e) {
        problems.push_back(e.what());
      }
    }
  };
  const int max_depth = 8;  // the layout is 3 deep; a deeper file is not ours (or links in a cycle)
  std::function<void(const std::string&, int)> visit = [&](const std::string& path, int depth) {
    Object& group = image[path];
    read_attrs(path, group);
    if (depth > max_depth) {
      problems.push_back(fmt::format("{}: groups nested deeper than {}", path, max_depth));
      return;
    }
    for (const h5::Member& m : f.list(path)) {
      std::string child = path == "/" ? "/" + m.name : path + "/" + m.name;
      try {
        if (m.kind == h5::ObjectKind::Group) {
          visit(child, depth + 1);
        } else if (m.kind == h5::ObjectKind::Dataset) {
          Object obj;
          obj.is_group = false;
          obj.data = f.read(child);
          read_attrs(child, obj);
          image[child] = std::move(obj);
        } else {
          problems.push_back(fmt::format("{}: neither a group nor a dataset (a broken link?)", child));
        }
      } catch (const Error& e) {
        problems.push_back(e.what());
      }
    }
  };
  try {
    visit("/", 0);
  } catch (const Error& e) {
    problems.push_back(e.what());
  }
  return image;
}

// Reads a checkpoint's layout out of an image, adding every mismatch to
// `problems`: the building blocks of the from_image steps below.
class Reader {
 public:
  Reader(const Image& image, std::vector<std::string>& problems) : image_(image), problems_(problems) {}

  const Image& image() const { return image_; }

  const Object* group(const std::string& path) {
    auto it = image_.find(path);
    if (it == image_.end()) return problem("missing group '{}'", path), nullptr;
    if (!it->second.is_group) return problem("'{}' is a dataset, expected a group", path), nullptr;
    return &it->second;
  }

  const Attr* attr(const std::string& path, const std::string& name, h5::AttrType type) {
    auto it = image_.find(path);
    if (it == image_.end()) return nullptr;  // reported as a missing group
    auto a = it->second.attrs.find(name);
    if (a == it->second.attrs.end()) return problem("missing attribute {}@{}", path, name), nullptr;
    if (a->second.type != type) return problem("attribute {}@{} is {}, expected {}", path, name, type_word(a->second.type), type_word(type)), nullptr;
    return &a->second;
  }

  // The attributes of `path` other than `except`, each of `type`.
  template <class F>
  void each_attr(const std::string& path, h5::AttrType type, const std::set<std::string>& except, F&& take) {
    auto it = image_.find(path);
    if (it == image_.end()) return;
    for (const auto& [name, a] : it->second.attrs) {
      if (except.count(name)) continue;
      if (a.type != type)
        problem("attribute {}@{} is {}, expected {}", path, name, type_word(a.type), type_word(type));
      else
        take(name, a);
    }
  }

  // The members directly inside `path` ("name" -> object), skipping `except`.
  std::vector<std::pair<std::string, const Object*>> members(const std::string& path,
                                                             const std::set<std::string>& except = {}) {
    std::vector<std::pair<std::string, const Object*>> out;
    const std::string prefix = path == "/" ? "/" : path + "/";
    for (auto it = image_.lower_bound(prefix); it != image_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
         ++it) {
      std::string rest = it->first.substr(prefix.size());
      if (rest.empty() || rest.find('/') != std::string::npos || except.count(rest)) continue;
      out.emplace_back(rest, &it->second);
    }
    return out;
  }

  // A dataset member with a matching checksum.
  bool checked_data(const std::string& path, const Object& obj) {
    if (obj.is_group) return problem("'{}' is a group, expected a dataset", path), false;
    auto a = obj.attrs.find(kDataChecksum);
    if (a == obj.attrs.end() || a->second.type != h5::AttrType::Int)
      return problem("dataset '{}' has no integer '{}' attribute (its checksum)", path, kDataChecksum), false;
    uint64_t want = as_uint64(a->second.i), got = data_checksum(obj.data);
    if (want != got)
      return problem("checksum mismatch in '{}': the data hashes to {:016x}, the file says {:016x} (the file is corrupt)",
                     path, got, want),
             false;
    if (obj.attrs.size() != 1) problem("dataset '{}' has attributes besides '{}'", path, kDataChecksum);
    return true;
  }

  // The group `path`'s checked datasets (members but `except`), appended to out.
  void tensors_in(const std::string& path, nn::NamedTensors& out, const std::set<std::string>& except = {}) {
    if (group(path) == nullptr) return;
    for (const auto& [name, obj] : members(path, except))
      if (checked_data(path + "/" + name, *obj)) out.emplace_back(name, obj->data);
  }

  // Every attribute of `path` but `known` is a problem (one not of `type` is
  // reported as of the wrong type).
  void no_other_attrs(const std::string& path, h5::AttrType type, const std::set<std::string>& known) {
    each_attr(path, type, known,
              [&](const std::string& name, const Attr&) { problem("unexpected attribute {}@{}", path, name); });
  }
  // Any attribute of `path` is a problem.
  void no_attrs(const std::string& path) {
    auto it = image_.find(path);
    if (it != image_.end())
      for (const auto& [name, a] : it->second.attrs) problem("unexpected attribute {}@{}", path, name);
  }
  // Every member of `path` but `known` is a problem.
  void no_other_members(const std::string& path, const std::set<std::string>& known = {}) {
    for (const auto& [name, obj] : members(path, known))
      problem("unexpected object '{}{}'", path == "/" ? "/" : path + "/", name);
  }

  template <class... Args>
  void problem(const char* format, const Args&... args) {
    problems_.push_back(fmt::format(format, args...));
  }
  // Forgets what was found so far: a foreign file or another version is only that.
  void only(std::string what) {
    problems_.clear();
    problems_.push_back(std::move(what));
  }

  static const char* type_word(h5::AttrType t) {
    switch (t) {
      case h5::AttrType::Int: return "an integer";
      case h5::AttrType::Float: return "a float";
      case h5::AttrType::String: return "a string";
      default: return "of an unsupported type";
    }
  }

 private:
  const Image& image_;
  std::vector<std::string>& problems_;
};

// ---- from_image, one part of the layout at a time ----------------------------------

// What the file is: a heed checkpoint of this format version, whose content
// checksum holds, with nothing at its root that the layout does not name.
// False when it is not a checkpoint this heed reads: then nothing else is read.
bool read_root(Reader& r) {
  const Attr* format = r.attr("/", "format", h5::AttrType::String);
  if (format == nullptr || format->s != kFormat) {
    r.only(format == nullptr ? "not a heed checkpoint (no root attribute 'format')"
                             : fmt::format("not a heed checkpoint (root attribute format = '{}')", format->s));
    return false;
  }
  const Attr* version = r.attr("/", "format_version", h5::AttrType::Int);
  if (version == nullptr) return false;
  if (version->i != kCheckpointFormatVersion) {
    r.only(fmt::format("format_version {} is not supported (this heed reads version {})", version->i,
                       kCheckpointFormatVersion));
    return false;
  }
  r.attr("/", "created_by", h5::AttrType::String);
  if (const Attr* sum = r.attr("/", kContentChecksum, h5::AttrType::Int)) {
    uint64_t want = as_uint64(sum->i), got = content_checksum(r.image());
    if (want != got)
      r.problem("content checksum mismatch: the groups, names and attributes hash to {:016x}, the file says {:016x} "
                "(the file is corrupt or was changed by another program)",
                got, want);
  }
  const std::set<std::string> root_attrs{"format", "format_version", "created_by", kContentChecksum};
  for (const auto& [name, a] : r.image().at("/").attrs)
    if (!root_attrs.count(name)) r.problem("unexpected root attribute '{}'", name);
  r.no_other_members("/", {"model", "optimizer", "scheduler", "rng", "training", "config", "texts", "history", "averages"});
  return true;
}

// The "type" string of the optimizer's or the schedule's group (no other attribute).
std::string read_type(Reader& r, const std::string& path) {
  const Attr* type = r.attr(path, "type", h5::AttrType::String);
  r.no_other_attrs(path, h5::AttrType::String, {"type"});
  return type != nullptr ? type->s : std::string();
}

// A group of attributes of one type and nothing else (the optimizer's
// scalars, the schedule's state, the loop's counters, the configuration):
// take(name, attr) for each.
template <class F>
void read_attr_group(Reader& r, const std::string& path, h5::AttrType type, F&& take) {
  if (r.group(path) != nullptr) r.each_attr(path, type, {}, take);
  r.no_other_members(path);
}

void read_optimizer(Reader& r, Checkpoint& c) {
  r.tensors_in("/optimizer", c.optimizer_tensors, {"scalars"});
  c.optimizer_type = read_type(r, "/optimizer");
  read_attr_group(r, "/optimizer/scalars", h5::AttrType::Float,
                  [&](const std::string& name, const Attr& a) { c.optimizer_scalars[name] = a.f; });
}

void read_scheduler(Reader& r, Checkpoint& c) {
  if (r.group("/scheduler") != nullptr) {
    c.scheduler_type = read_type(r, "/scheduler");
    r.no_other_members("/scheduler", {"state"});
  }
  read_attr_group(r, "/scheduler/state", h5::AttrType::Float,
                  [&](const std::string& name, const Attr& a) { c.scheduler_state[name] = a.f; });
}

// The generator's state, the loop's counters and the configuration: groups of
// attributes only.
void read_run(Reader& r, Checkpoint& c) {
  if (r.group("/rng") != nullptr) {
    if (const Attr* seed = r.attr("/rng", "seed", h5::AttrType::Int)) c.rng_seed = as_uint64(seed->i);
    if (const Attr* offset = r.attr("/rng", "offset", h5::AttrType::Int)) c.rng_offset = as_uint64(offset->i);
    r.no_other_attrs("/rng", h5::AttrType::Int, {"seed", "offset"});
  }
  r.no_other_members("/rng");
  read_attr_group(r, "/training", h5::AttrType::Int,
                  [&](const std::string& name, const Attr& a) { c.training[name] = a.i; });
  read_attr_group(r, "/config", h5::AttrType::String,
                  [&](const std::string& name, const Attr& a) { c.config[name] = a.s; });
}

void read_texts(Reader& r, Checkpoint& c) {
  nn::NamedTensors texts;
  r.tensors_in("/texts", texts);
  for (const auto& [key, t] : texts) {
    if (t.dtype() != DType::UInt8 || t.dim() != 1) {
      r.problem("text '/texts/{}' is {} {}, expected uint8 [n]", key, t.dtype(), shape_str(t.shape()));
      continue;
    }
    const auto* p = static_cast<const char*>(t.raw_data());
    c.texts[key] = std::string(p, p + t.numel());
  }
  r.no_attrs("/texts");
}

void read_averages(Reader& r, Checkpoint& c) {
  if (!r.image().count("/averages") || r.group("/averages") == nullptr) return;  // optional
  r.tensors_in("/averages", c.averages);
  if (const Attr* updates = r.attr("/averages", "updates", h5::AttrType::Int)) {
    c.average_updates = updates->i;
    if (updates->i < 0) r.problem("/averages@updates is {}, a negative count", updates->i);
  }
  r.no_other_attrs("/averages", h5::AttrType::Int, {"updates"});
}

void read_history(Reader& r, Checkpoint& c) {
  auto history = r.image().find("/history");
  if (history == r.image().end()) {
    r.problem("missing dataset '/history'");
  } else if (r.checked_data("/history", history->second)) {
    const Tensor& h = history->second.data;
    if (h.dtype() != DType::Float64 || h.dim() != 1)
      r.problem("'/history' is {} {}, expected float64 [n]", h.dtype(), shape_str(h.shape()));
    else
      c.history = h.to_vector<double>();
  }
}

// Turns a read image into a Checkpoint, adding every mismatch with the layout
// (docs/checkpoints.md) to `problems`.
Checkpoint from_image(const Image& image, std::vector<std::string>& problems) {
  Checkpoint c;
  Reader r(image, problems);
  if (!read_root(r)) return c;
  r.tensors_in("/model", c.model);
  r.no_attrs("/model");
  read_optimizer(r, c);
  read_scheduler(r, c);
  read_run(r, c);
  read_texts(r, c);
  read_averages(r, c);
  read_history(r, c);
  return c;
}

}  // namespace

Checkpoint load_checkpoint(const std::string& path) {
  std::vector<std::string> problems;
  Checkpoint c;
  try {
    h5::File f = h5::File::open(path);
    Image image = read_image(f, problems);
    std::vector<std::string> layout;
    c = from_image(image, layout);
    // A foreign file's read errors say less than "not a heed checkpoint".
    if (!layout.empty() && layout.front().rfind("not a heed checkpoint", 0) == 0) problems.clear();
    problems.insert(problems.end(), layout.begin(), layout.end());
  } catch (const Error& e) {
    problems.push_back(e.what());
  }
  if (!problems.empty()) {
    std::string list;
    for (const std::string& p : problems) list += "\n  - " + p;
    HEED_FAIL("load_checkpoint '{}': not a valid checkpoint ({} problem{}):{}", path, problems.size(),
              problems.size() == 1 ? "" : "s", list);
  }
  return c;
}

}  // namespace heed::io
