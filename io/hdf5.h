#pragma once
// A small HDF5 file wrapper: tensors as datasets, scalars as attributes.
// It reads the PyTorch reference files (tests/reference) and holds heed's
// checkpoints (io/checkpoint.h), so it reads what h5py writes and h5py reads
// what it writes.
//
// - Paths name objects from the root: "inputs/x" and "/inputs/x" are the
//   same. Only '/' separates groups: "params/encoder.norm.weight" is the
//   dataset "encoder.norm.weight" in the group "params".
// - Dtypes: float32, float64, bfloat16 (a 16-bit HDF5 float, which h5py
//   reads as float32, exactly), int64, uint8 and bool (stored as h5py does,
//   an int8 enum FALSE=0 / TRUE=1). A rank-0 tensor is a scalar dataspace.
// - Attributes are scalars: int64, float64 or a string (UTF-8, variable-length
//   as h5py writes it or fixed-length, StringLayout below; both are read).
// - Every failure throws heed::Error naming the file, the object and what went
//   wrong; HDF5's own error printing is switched off.
// - Corrupt files: heed writes the 1.8 format, whose metadata is checksummed,
//   so damage there is an error. Its groups and objects keep their links and
//   attributes in their own (checksummed) object headers, never in the dense
//   fractal-heap storage that HDF5 1.10.8 crashes on when it is damaged.
//   Raw data has no checksum: io/checkpoint.h adds its own. Files in the older format (h5py's default,
//   the reference files) have no checksums, and HDF5 1.10.8 itself can crash
//   or loop forever on some damaged ones (h5dump does too); only a truncated
//   file is always caught.
// - Not thread safe (neither is the serial HDF5 library): use a File, and
//   HDF5 as a whole, from one thread at a time.
//
// HDF5 is a private dependency of heed: this header does not include it.
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace heed::io::h5 {

enum class Mode { Read, ReadWrite };

enum class ObjectKind { Group, Dataset, Other };

struct Member {
  std::string name;  // the link name inside its group (no '/')
  ObjectKind kind;
};

enum class AttrType { Int, Float, String, Other };

// How a string attribute is stored. Variable is h5py's default; its text lives
// in HDF5's global heap, which has no checksum, and HDF5 1.10 can crash reading
// a damaged one. Fixed keeps the text inside the attribute's own (checksummed)
// object header, so checkpoints use it; both read back the same.
enum class StringLayout { Variable, Fixed };

class File {
 public:
  // Opens an existing file. Throws when it is missing, is not an HDF5 file,
  // or cannot be opened (truncated, corrupt, no permission).
  static File open(const std::string& path, Mode mode = Mode::Read);
  // Creates a file for writing, replacing any file at `path`.
  static File create(const std::string& path);

  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();

  const std::string& path() const { return path_; }
  bool is_open() const { return id_ >= 0; }
  // Writes buffered data to disk; the file stays open.
  void flush();
  // Closes the file (the destructor does this too); later calls throw.
  void close();

  // ---- objects ----
  // Whether an object is at `object`; false (never an error) for a path
  // through a missing group or a dataset.
  bool exists(const std::string& object) const;
  bool is_group(const std::string& object) const;
  bool is_dataset(const std::string& object) const;
  // The members of a group, sorted by name.
  std::vector<Member> list(const std::string& group = "/") const;
  // Every dataset under `group`, recursively, as paths relative to it
  // ("a", "sub/b"), sorted.
  std::vector<std::string> list_datasets(const std::string& group) const;
  // Creates a group and any missing parent groups; an existing group is fine.
  void create_group(const std::string& group);
  // Removes the link to an object (the file does not shrink).
  void remove(const std::string& object);

  // ---- datasets ----
  // The stored dtype and shape, without reading the data.
  DType dtype(const std::string& dataset) const;
  Shape shape(const std::string& dataset) const;
  // Reads a dataset into a new contiguous CPU tensor.
  Tensor read(const std::string& dataset) const;
  // The same, throwing unless the stored dtype is `expected`.
  Tensor read(const std::string& dataset, DType expected) const;
  // Writes `t` (any device or layout; its values are copied) as a new
  // dataset, creating missing parent groups. An existing object at that
  // path is an error: remove() it first to replace it.
  void write(const std::string& dataset, const Tensor& t);

  // ---- attributes (object "/" or "" is the root) ----
  std::vector<std::string> attr_names(const std::string& object = "/") const;
  bool has_attr(const std::string& object, const std::string& name) const;
  AttrType attr_type(const std::string& object, const std::string& name) const;
  // Integer attributes only.
  int64_t read_attr_int(const std::string& object, const std::string& name) const;
  // Float attributes, or integer ones (converted).
  double read_attr_double(const std::string& object, const std::string& name) const;
  std::string read_attr_string(const std::string& object, const std::string& name) const;
  // Writing replaces an attribute of the same name.
  void write_attr_int(const std::string& object, const std::string& name, int64_t value);
  void write_attr_double(const std::string& object, const std::string& name, double value);
  void write_attr_string(const std::string& object, const std::string& name, const std::string& value,
                         StringLayout layout = StringLayout::Variable);

 private:
  File(std::string path, int64_t id) : path_(std::move(path)), id_(id) {}
  int64_t checked_id(const char* what) const;

  std::string path_;
  int64_t id_ = -1;  // the HDF5 file handle (an hid_t)
};

}  // namespace heed::io::h5
