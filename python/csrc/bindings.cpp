// linearard._C: the relation-KL op (src/ops/relation_kl/relation_kl.h) for Python. Tensors cross
// as torch.Tensor with their autograd history, so the op's own autograd Functions (relation_kl.cpp)
// record the backward: Python reuses the C++ gradients, the fused self-relation one included.
// Arguments are checked in python/linearard/relation_kl.py before they get here.
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>

#include <optional>

#include "ops/relation_kl/relation_kl.h"

namespace py = pybind11;

namespace {

using linearard::ops::RelationKLOptions;

RelationKLOptions options(double scale_s, double scale_t, bool causal) {
  RelationKLOptions o;
  o.scale_s = scale_s;
  o.scale_t = scale_t;
  o.causal = causal;
  return o;
}

at::Tensor relation_kl(const at::Tensor& xs, const at::Tensor& ys, const at::Tensor& xt,
                       const at::Tensor& yt, const std::optional<at::Tensor>& key_mask,
                       double scale_s, double scale_t, bool causal) {
  return linearard::ops::relation_kl(xs, ys, xt, yt, key_mask, options(scale_s, scale_t, causal));
}

at::Tensor relation_kl_self(const at::Tensor& xs, const at::Tensor& xt,
                            const std::optional<at::Tensor>& key_mask, double scale_s,
                            double scale_t, bool causal) {
  return linearard::ops::relation_kl_self(xs, xt, key_mask, options(scale_s, scale_t, causal));
}

bool has_cuda() {
#ifdef LINEARARD_WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "linearard's C++ ops; use linearard.relation_kl / relation_kl_self";
  // The GIL is released while the op runs: the tensors are converted before, the result after.
  m.def("relation_kl", &relation_kl, py::arg("xs"), py::arg("ys"), py::arg("xt"), py::arg("yt"),
        py::arg("key_mask"), py::arg("scale_s"), py::arg("scale_t"), py::arg("causal"),
        py::call_guard<py::gil_scoped_release>(),
        "Per-row KL(teacher || student), (B, H, T); differentiable w.r.t. xs and ys");
  m.def("relation_kl_self", &relation_kl_self, py::arg("xs"), py::arg("xt"), py::arg("key_mask"),
        py::arg("scale_s"), py::arg("scale_t"), py::arg("causal"),
        py::call_guard<py::gil_scoped_release>(),
        "Per-row self-relation KL(teacher || student), (B, H, T); differentiable w.r.t. xs");
  m.def("has_cuda", &has_cuda, "Whether this build has the CUDA kernels");
}
