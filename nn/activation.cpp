// ReLU and GELU are header-only (see nn/activation.h); this file keeps the
// one-.cpp-per-header layout of nn/.
#include "nn/activation.h"
