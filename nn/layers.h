#pragma once
// Every ready-made layer and model of heed::nn.
#include "nn/activation.h"
#include "nn/attention.h"
#include "nn/dropout.h"
#include "nn/embedding.h"
#include "nn/gpt.h"
#include "nn/linear.h"
#include "nn/module.h"
#include "nn/module_list.h"
#include "nn/multihead_attention.h"
#include "nn/norm.h"
#include "nn/transformer.h"
