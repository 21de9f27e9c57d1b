#pragma once
// heed: tensors with reverse-mode autodiff for training attention models.
// One include for users: #include <heed.h>
#include "autograd/engine.h"
#include "autograd/function.h"
#include "autograd/grad_mode.h"
#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "cuda/memory.h"
#include "cuda/register.h"
#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/error.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "nn/layers.h"
