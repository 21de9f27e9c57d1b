#pragma once
// The char and word tokenizers: a list of pieces (index = id) and how a text
// is cut into pieces. Internal; use data/tokenizer.h.
#include <string>
#include <unordered_map>
#include <vector>

#include "data/tokenizer.h"

namespace heed::data::detail {

enum class PieceKind { Char, Word };

class VocabTokenizer : public Tokenizer {
 public:
  // `pieces` are the non-special tokens, in id order from kNumSpecials on.
  VocabTokenizer(PieceKind kind, std::vector<std::string> pieces);

  std::string kind() const override;
  std::vector<int64_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override { return kNumSpecials + static_cast<int64_t>(pieces_.size()); }
  std::string token(int64_t id) const override;
  std::string serialize() const override;

  static std::unique_ptr<Tokenizer> deserialize(PieceKind kind, const std::string& blob);

 private:
  std::vector<std::string> split(const std::string& text) const;

  PieceKind kind_;
  std::vector<std::string> pieces_;
  std::unordered_map<std::string, int64_t> ids_;
};

// The serialized header line, "heed-tokenizer <kind> 1".
std::string tokenizer_header(const std::string& kind);
// Throws unless lines[0] is the header of `kind`.
void check_tokenizer_header(const std::vector<std::string>& lines, const std::string& kind);

}  // namespace heed::data::detail
