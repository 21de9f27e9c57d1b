#include "examples/common/export.h"

#include "tensor/ops.h"

namespace heed::examples {

void write_ragged(io::h5::File& file, const std::string& name, const std::vector<std::vector<int64_t>>& rows) {
  std::vector<int64_t> flat, offsets{0};
  offsets.reserve(rows.size() + 1);
  for (const auto& r : rows) {
    flat.insert(flat.end(), r.begin(), r.end());
    offsets.push_back(static_cast<int64_t>(flat.size()));
  }
  file.write(name + "/flat", from_vector<int64_t>(flat, {static_cast<int64_t>(flat.size())}));
  file.write(name + "/offsets", from_vector<int64_t>(offsets, {static_cast<int64_t>(offsets.size())}));
}

void write_strings(io::h5::File& file, const std::string& name, const std::vector<std::string>& strings) {
  std::vector<uint8_t> flat;
  std::vector<int64_t> offsets{0};
  for (const auto& s : strings) {
    flat.insert(flat.end(), s.begin(), s.end());
    offsets.push_back(static_cast<int64_t>(flat.size()));
  }
  file.write(name + "/flat", from_vector<uint8_t>(flat, {static_cast<int64_t>(flat.size())}));
  file.write(name + "/offsets", from_vector<int64_t>(offsets, {static_cast<int64_t>(offsets.size())}));
}

nn::NamedTensors copy_parameters(const nn::NamedTensors& params) {
  nn::NamedTensors copies;
  for (const auto& [name, p] : params) copies.emplace_back(name, p.detach().to(kCPU).clone());
  return copies;
}

void write_initial_parameters(const std::string& path, const nn::NamedTensors& params) {
  io::h5::File f = io::h5::File::open(path, io::h5::Mode::ReadWrite);
  for (const auto& [name, p] : params) f.write("init/" + name, p);
}

std::vector<std::string> token_pieces(const data::Tokenizer& tok) {
  std::vector<std::string> pieces;
  for (int64_t id = 0; id < tok.vocab_size(); ++id) pieces.push_back(tok.decode({id}));
  return pieces;
}

}  // namespace heed::examples
