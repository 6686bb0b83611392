#include "train/nonfinite.h"

#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "common/error.h"

namespace linearard::train {
namespace {

constexpr const char* kInjectVar = "LINEARARD_TEST_INJECT_NAN";
const char* const kPartNames[] = {"loss", "q", "k", "v", "logits", "lm", "hidden"};  // the trainer's order

}  // namespace

std::string nonfinite_term(const std::vector<double>& parts, const std::vector<bool>& present, double grad_norm) {
  for (size_t i = 1; i < parts.size() && i < 7; ++i)
    if (present[i] && !std::isfinite(parts[i])) return kPartNames[i];
  if (!parts.empty() && present[0] && !std::isfinite(parts[0])) return "loss";
  if (!std::isfinite(grad_norm)) return "grad_norm";
  return "";
}

NonfiniteInjection NonfiniteInjection::from_environment() {
  NonfiniteInjection out;
  const char* spec = std::getenv(kInjectVar);
  if (!spec || !*spec) return out;
  std::stringstream items(spec);
  std::string text;
  while (std::getline(items, text, ',')) {
    Item item;
    const size_t colon = text.find(':');
    const size_t at = text.find('@');
    try {
      if (colon == std::string::npos) throw std::invalid_argument(text);
      item.step = std::stoll(text.substr(0, colon));
      item.term = text.substr(colon + 1, at == std::string::npos ? std::string::npos : at - colon - 1);
      if (at != std::string::npos) item.rank = std::stoi(text.substr(at + 1));
    } catch (const std::exception&) {
      fail(kInjectVar, "expected items like 3:q or 5:grad_norm@1, got '" + text + "'");
    }
    bool known = item.term == "grad_norm";
    for (const char* name : kPartNames) known = known || item.term == name;
    if (!known) fail(kInjectVar, "unknown term '" + item.term + "' (loss, q, k, v, logits, lm, hidden, grad_norm)");
    out.items_.push_back(item);
  }
  return out;
}

void NonfiniteInjection::apply_to_loss(int64_t step, int rank, LossParts& parts) const {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const Item& item : items_) {
    if (!hits(item, step, rank) || item.term == "grad_norm") continue;
    at::Tensor* term = item.term == "q"        ? &parts.q
                       : item.term == "k"      ? &parts.k
                       : item.term == "v"      ? &parts.v
                       : item.term == "logits" ? &parts.logits
                       : item.term == "lm"     ? &parts.lm
                       : item.term == "hidden" ? &parts.hidden
                                               : nullptr;
    if (term) {
      if (!term->defined()) fail(kInjectVar, "this run's objective has no '" + item.term + "' term");
      *term = *term + nan;
    }
    parts.total = parts.total + nan;
  }
}

void NonfiniteInjection::apply_to_grads(int64_t step, int rank, const NamedTensors& params) const {
  for (const Item& item : items_) {
    if (!hits(item, step, rank) || item.term != "grad_norm" || params.empty()) continue;
    at::NoGradGuard no_grad;
    const at::Tensor& p = params.front().second;
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    p.grad().narrow(0, 0, 1).fill_(std::numeric_limits<double>::infinity());  // one row
  }
}

}  // namespace linearard::train
