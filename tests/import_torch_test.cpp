// The import_torch ctest (tests/CMakeLists.txt): tests/import_torch/make_case.py
// converts PyTorch models with tools/import_torch.py, then runs this hidden
// case with HEED_IMPORT_TORCH_DIR set. heed loads each checkpoint into a model
// built from its config/ alone and must give PyTorch's logits.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include "tensor/grad_mode.h"
#include "io/checkpoint.h"
#include "nn/gpt.h"
#include "io/hdf5.h"
#include "nn/seq2seq.h"
#include "tensor/ops.h"

using namespace heed;

namespace {
int64_t config_int(const io::Checkpoint& c, const std::string& key) {
  INFO("config/" << key);
  REQUIRE(c.config.count(key) == 1);
  return std::stoll(c.config.at(key));
}

// The largest |heed - torch|, after checking the shapes agree.
double max_abs_diff(const Tensor& got, const Tensor& want) {
  REQUIRE(got.shape() == want.shape());
  return to_dtype(abs(got.detach() - want).max(), DType::Float64).item<double>();
}
}  // namespace

TEST_CASE("import_torch: heed gives PyTorch's logits from imported checkpoints", "[.][import_torch]") {
  const char* dir_env = std::getenv("HEED_IMPORT_TORCH_DIR");
  if (dir_env == nullptr) return;  // only from the import_torch ctest
  const std::string dir = dir_env;
  io::h5::File expected = io::h5::File::open(dir + "/expected.h5");
  NoGradGuard no_grad;

  SECTION("seq2seq: torch.nn.Transformer with embeddings and a generator") {
    io::Checkpoint c = io::load_checkpoint(dir + "/seq2seq.h5");
    REQUIRE(c.config.at("model") == "seq2seq");
    REQUIRE(c.config.at("activation") == "relu");
    nn::Seq2SeqOptions o{config_int(c, "src_vocab"), config_int(c, "tgt_vocab")};
    o.d_model = config_int(c, "d_model");
    o.nhead = config_int(c, "nhead");
    o.num_encoder_layers = config_int(c, "num_encoder_layers");
    o.num_decoder_layers = config_int(c, "num_decoder_layers");
    o.dim_feedforward = config_int(c, "dim_feedforward");
    o.layer_norm_eps = std::stod(c.config.at("layer_norm_eps"));
    o.dropout = 0;
    nn::Seq2SeqTransformer model(o);
    nn::load_state(model, c.model);
    model.eval();
    Tensor logits = model.forward(expected.read("src_ids"), expected.read("tgt_ids"),
                                  to_dtype(expected.read("src_key_padding_mask"), DType::Bool),
                                  to_dtype(expected.read("tgt_key_padding_mask"), DType::Bool));
    double diff = max_abs_diff(logits, expected.read("seq2seq_logits"));
    INFO("max |heed - torch| = " << diff);
    REQUIRE(diff <= 1e-4);
  }

  SECTION("gpt: pre-LN blocks of nn.TransformerEncoderLayer") {
    io::Checkpoint c = io::load_checkpoint(dir + "/gpt.h5");
    REQUIRE(c.config.at("model") == "gpt");
    nn::GPTOptions o{config_int(c, "vocab"), config_int(c, "block_size")};
    o.d_model = config_int(c, "d_model");
    o.nhead = config_int(c, "nhead");
    o.num_layers = config_int(c, "num_layers");
    o.dim_feedforward = config_int(c, "dim_feedforward");
    o.tied_lm_head = config_int(c, "tied_lm_head") != 0;
    nn::GPT model(o);
    nn::load_state(model, c.model);
    model.eval();
    double diff = max_abs_diff(model.forward(expected.read("gpt_ids")), expected.read("gpt_logits"));
    INFO("max |heed - torch| = " << diff);
    REQUIRE(diff <= 1e-4);
  }
}
