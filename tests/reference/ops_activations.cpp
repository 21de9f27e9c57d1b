// Reference ops of heed's pointwise and softmax functions.
#include "tests/reference/case.h"

namespace heed::reference {
namespace {

void softmax_op(RefCase& c) { c.out("y", softmax(c.input("x"), c.attr_int("dim"))); }
HEED_REFERENCE_OP("softmax", softmax_op);

void log_softmax_op(RefCase& c) { c.out("y", log_softmax(c.input("x"), c.attr_int("dim"))); }
HEED_REFERENCE_OP("log_softmax", log_softmax_op);

// approximate = "none" (erf) or "tanh", as torch.nn.functional.gelu.
void gelu_op(RefCase& c) {
  std::string approximate = c.attr_string("approximate");
  HEED_CHECK(approximate == "none" || approximate == "tanh",
             "gelu: approximate is '{}', expected \"none\" or \"tanh\"", approximate);
  c.out("y", gelu(c.input("x"), approximate == "tanh" ? GeluApprox::Tanh : GeluApprox::None));
}
HEED_REFERENCE_OP("gelu", gelu_op);

void relu_op(RefCase& c) { c.out("y", relu(c.input("x"))); }
HEED_REFERENCE_OP("relu", relu_op);

}  // namespace
}  // namespace heed::reference
