#pragma once
// Writing what a training program saw to HDF5, so that another framework
// (bench/*_torch.py) can train on exactly the same data, batches and
// vocabulary. Ragged lists are stored flat with offsets, as numpy users
// expect: row i is flat[offsets[i]:offsets[i+1]], offsets has n + 1 entries.
#include <cstdint>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "nn/module.h"
#include "io/hdf5.h"

namespace heed::examples {

// <name>/flat (int64) and <name>/offsets (int64 [n + 1]).
void write_ragged(io::h5::File& file, const std::string& name, const std::vector<std::vector<int64_t>>& rows);

// <name>/flat (uint8 bytes) and <name>/offsets: strings that may hold any byte.
void write_strings(io::h5::File& file, const std::string& name, const std::vector<std::string>& strings);

// Detached CPU copies of a model's parameters: its initial weights, kept
// while training changes the model, for write_initial_parameters afterwards.
nn::NamedTensors copy_parameters(const nn::NamedTensors& params);

// Adds parameters (the initial weights, see copy_parameters) to an existing
// export as init/<parameter name>, so that the other framework can start from
// the very same weights.
void write_initial_parameters(const std::string& path, const nn::NamedTensors& params);

// Each id's text as the tokenizer's decode() gives it for that id alone (the
// specials decode to ""), so that joining the pieces of a sequence's ids
// reproduces decode() of the whole sequence for the byte-level and character
// tokenizers.
std::vector<std::string> token_pieces(const data::Tokenizer& tok);

}  // namespace heed::examples
