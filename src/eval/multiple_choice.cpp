#include "eval/multiple_choice.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "common/error.h"
#include "common/option_error.h"
#include "eval/token_nll.h"

namespace linearard::eval {
namespace {

std::vector<int64_t> encode(const tok::Tokenizer& tok, const std::string& text, bool add_special) {
  std::vector<int32_t> ids = tok.encode(text, add_special);
  // add_special_tokens=True on a LLaMA tokenizer adds BOS only; never end a context with EOS.
  if (add_special && tok.adds_eos() && !ids.empty() && ids.back() == tok.eos_id()) ids.pop_back();
  return std::vector<int64_t>(ids.begin(), ids.end());
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// The index of the first maximum (numpy's argmax).
size_t argmax(const std::vector<double>& v) {
  return static_cast<size_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

}  // namespace

int64_t utf8_length(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;  // count every byte that is not a continuation
  return n;
}

double mean_stderr(const std::vector<double>& values) {
  const size_t n = values.size();
  if (n < 2) return 0.0;
  const double mean = std::accumulate(values.begin(), values.end(), 0.0) / n;
  double ss = 0;
  for (double v : values) ss += (v - mean) * (v - mean);
  return std::sqrt(ss / (n - 1)) / std::sqrt(static_cast<double>(n));
}

std::vector<McDoc> read_mc_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open multiple-choice file");
  std::vector<McDoc> docs;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    const std::string where = path + ":" + std::to_string(number);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      fail(where, std::string("invalid JSON: ") + e.what());
    }
    if (!j.is_object() || !j.contains("context") || !j["context"].is_string() || !j.contains("choices") ||
        !j["choices"].is_array() || !j.contains("gold") || !j["gold"].is_number_integer())
      fail(where, "expected {\"context\": string, \"choices\": [string, ...], \"gold\": integer}");
    McDoc d;
    d.context = j["context"];
    for (const auto& c : j["choices"]) {
      if (!c.is_string()) fail(where, "every choice must be a string");
      d.choices.push_back(c);
    }
    d.gold = j["gold"];
    if (d.choices.size() < 2) fail(where, "needs at least 2 choices");
    if (d.gold < 0 || d.gold >= static_cast<int64_t>(d.choices.size()))
      fail(where, "gold " + std::to_string(d.gold) + " is not a choice index");
    for (const auto& c : d.choices)
      if (c.empty()) fail(where, "empty choice (acc_norm divides by its length)");
    docs.push_back(std::move(d));
  }
  if (docs.empty()) fail(path, "no documents");
  return docs;
}

LoglikelihoodRequest encode_pair(const tok::Tokenizer& tok, const std::string& context_in,
                                 const std::string& continuation_in, const McEncodeOptions& o) {
  LoglikelihoodRequest r;
  if (context_in.empty()) {  // the harness conditions on its prefix token alone
    const int64_t prefix = tok.bos_id() >= 0 ? tok.bos_id() : tok.eos_id();
    if (prefix < 0) fail("multiple choice", "empty context and the tokenizer has neither BOS nor EOS");
    r.context = {prefix};
    r.continuation = encode(tok, continuation_in, o.add_bos);
  } else {
    std::string context = context_in, continuation = continuation_in;
    size_t keep = context.size();
    while (keep > 0 && is_space(context[keep - 1])) --keep;
    continuation = context.substr(keep) + continuation;
    context.resize(keep);
    const std::vector<int64_t> whole = encode(tok, context + continuation, o.add_bos);
    r.context = encode(tok, context, o.add_bos);
    if (whole.size() > r.context.size()) r.continuation.assign(whole.begin() + r.context.size(), whole.end());
    if (r.context.empty()) {  // e.g. a context of whitespace only, without BOS
      const int64_t prefix = tok.bos_id() >= 0 ? tok.bos_id() : tok.eos_id();
      if (prefix >= 0) r.context = {prefix};
    }
  }
  if (r.context.empty()) fail("multiple choice", "context encodes to no tokens");
  if (r.continuation.empty())
    fail("multiple choice", "continuation '" + continuation_in + "' encodes to no tokens after its context");
  return r;
}

std::vector<Loglikelihood> loglikelihoods(const EvalModel& m, const std::vector<LoglikelihoodRequest>& requests,
                                          int64_t max_length, int64_t batch_size) {
  if (max_length < 2) fail_option("max-length", "must be at least 2");
  if (batch_size < 1) fail_option("batch-size", "must be at least 1");
  const model::DecoderModel& model = *m.model;
  const at::Device device = model.device();
  // Model inputs and where the continuation sits in them.
  struct Item {
    std::vector<int64_t> input;
    int64_t cont = 0;  // continuation length: targets are the last `cont` tokens of input + [next]
    std::vector<int64_t> targets;
  };
  std::vector<Item> items(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    std::vector<int64_t> full = requests[i].context;
    full.insert(full.end(), requests[i].continuation.begin(), requests[i].continuation.end());
    if (static_cast<int64_t>(full.size()) > max_length + 1) full.erase(full.begin(), full.end() - (max_length + 1));
    Item& it = items[i];
    it.cont = static_cast<int64_t>(requests[i].continuation.size());
    it.input.assign(full.begin(), full.end() - 1);
    if (it.cont > static_cast<int64_t>(it.input.size()))
      fail("multiple choice", "a continuation is longer than --max-length");
    it.targets.assign(full.end() - it.cont, full.end());
  }
  std::vector<size_t> order(items.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return items[a].input.size() > items[b].input.size(); });
  std::vector<Loglikelihood> out(requests.size());
  at::NoGradGuard no_grad;
  for (size_t start = 0; start < order.size(); start += batch_size) {
    const size_t B = std::min<size_t>(batch_size, order.size() - start);
    const int64_t L = static_cast<int64_t>(items[order[start]].input.size());  // longest in the batch
    at::Tensor tokens = at::zeros({static_cast<int64_t>(B), L}, at::kLong);  // (B, L), right-padded with 0
    auto acc = tokens.accessor<int64_t, 2>();
    std::vector<int64_t> rows, targets;
    for (size_t b = 0; b < B; ++b) {
      const Item& it = items[order[start + b]];
      const int64_t n = static_cast<int64_t>(it.input.size());
      for (int64_t t = 0; t < n; ++t) acc[b][t] = it.input[t];
      for (int64_t k = 0; k < it.cont; ++k) {
        rows.push_back(static_cast<int64_t>(b) * L + n - it.cont + k);
        targets.push_back(it.targets[k]);
      }
    }
    const auto tables = model.rope_tables_for(m.rope, L);
    model::ForwardRequest request;
    request.rope = &tables;
    request.stop = model::ForwardStop::kHidden;
    at::Tensor hidden = model.forward(tokens.to(device), request).hidden;  // (B, L, C)
    at::Tensor picked = hidden.view({-1, hidden.size(2)}).index_select(0, at::tensor(rows, at::kLong).to(device));
    TokenScores s = score_tokens(picked, model.weights().lm_head, at::tensor(targets, at::kLong).to(device));
    at::Tensor nll = s.nll.to(at::kCPU, at::kDouble), greedy = s.greedy.to(at::kCPU);
    int64_t k = 0;
    for (size_t b = 0; b < B; ++b) {
      const Item& it = items[order[start + b]];
      Loglikelihood& r = out[order[start + b]];
      r.ll = -nll.narrow(0, k, it.cont).sum().item<double>();
      r.greedy = greedy.narrow(0, k, it.cont).all().item<bool>();
      k += it.cont;
    }
  }
  return out;
}

McResult score_mc(const std::string& task, const std::vector<McDoc>& docs, const std::vector<Loglikelihood>& lls) {
  size_t expected = 0;
  for (const auto& d : docs) expected += d.choices.size();
  if (lls.size() != expected) fail("score_mc", "one loglikelihood per choice expected");
  McResult r;
  r.task = task;
  r.docs = static_cast<int64_t>(docs.size());
  std::vector<double> acc, acc_norm;
  size_t k = 0;
  for (const auto& d : docs) {
    std::vector<double> ll, normed;
    for (const auto& c : d.choices) {
      ll.push_back(lls[k].ll);
      normed.push_back(lls[k].ll / static_cast<double>(utf8_length(c)));
      ++k;
    }
    acc.push_back(argmax(ll) == static_cast<size_t>(d.gold) ? 1.0 : 0.0);
    acc_norm.push_back(argmax(normed) == static_cast<size_t>(d.gold) ? 1.0 : 0.0);
  }
  auto mean = [](const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / v.size(); };
  r.acc = mean(acc);
  r.acc_norm = mean(acc_norm);
  r.acc_stderr = mean_stderr(acc);
  r.acc_norm_stderr = mean_stderr(acc_norm);
  return r;
}

}  // namespace linearard::eval
