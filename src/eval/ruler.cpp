#include "eval/ruler.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>

#include "common/error.h"
#include "common/option_error.h"
#include "eval/passkey.h"
#include "eval/splitmix64.h"

namespace linearard::eval {
namespace {

using Tokens = std::vector<int64_t>;

Tokens enc(const tok::Tokenizer& tok, const std::string& text) {
  const std::vector<int32_t> ids = tok.encode(text, /*add_special=*/false);
  return Tokens(ids.begin(), ids.end());
}

void append(Tokens& into, const Tokens& t) { into.insert(into.end(), t.begin(), t.end()); }

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// A pronounceable pseudo-word of `syllables` consonant-vowel pairs (70^syllables words).
std::string pseudo_word(SplitMix& rng, int syllables) {
  static const char consonants[] = "bdfgklmnprstvz", vowels[] = "aeiou";
  std::string w;
  for (int i = 0; i < syllables; ++i) {
    w += consonants[rng.below(14)];
    w += vowels[rng.below(5)];
  }
  return w;
}

std::vector<std::string> distinct_words(SplitMix& rng, int64_t n, int syllables) {
  std::set<std::string> seen;
  std::vector<std::string> out;
  while (static_cast<int64_t>(out.size()) < n) {
    std::string w = pseudo_word(rng, syllables);
    if (seen.insert(w).second) out.push_back(std::move(w));
  }
  return out;
}

template <class T>
void shuffle(std::vector<T>& v, SplitMix& rng) {  // Fisher-Yates
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

// The pieces of one prompt: header text (before the body), body units (each already carrying its
// leading separator) and the question + answer prefix after it.
struct Layout {
  std::string header, footer;
};

// Haystack units " sentence" from `offset` on, cyclic, until `budget` tokens: whole units, then the
// first tokens of the next one, so that the result has exactly `budget` tokens.
Tokens fill(const tok::Tokenizer& tok, const std::vector<std::string>& haystack, size_t offset, int64_t budget,
            std::vector<size_t>* unit_starts = nullptr) {
  Tokens out;
  for (size_t i = offset; static_cast<int64_t>(out.size()) < budget; ++i) {
    const Tokens u = enc(tok, " " + haystack[i % haystack.size()]);
    if (u.empty()) continue;
    if (unit_starts) unit_starts->push_back(out.size());
    const int64_t take = std::min<int64_t>(static_cast<int64_t>(u.size()), budget - static_cast<int64_t>(out.size()));
    out.insert(out.end(), u.begin(), u.begin() + take);
  }
  return out;
}

struct Built {
  Tokens body;
  std::vector<std::string> answers;
  std::string query;
};

// Haystack with `needles` (in order) at seeded unit boundaries.
Tokens haystack_with_needles(const tok::Tokenizer& tok, const std::vector<std::string>& haystack, SplitMix& rng,
                             const std::vector<std::string>& needles, int64_t budget, const std::string& where) {
  std::vector<Tokens> nt;
  int64_t needle_tokens = 0;
  for (const auto& n : needles) {
    nt.push_back(enc(tok, " " + n));
    needle_tokens += static_cast<int64_t>(nt.back().size());
  }
  if (budget - needle_tokens < 1) fail(where, "too short for the task's question and needles");
  std::vector<size_t> starts;
  const Tokens hay = fill(tok, haystack, rng.below(haystack.size()), budget - needle_tokens, &starts);
  std::vector<size_t> at;  // insertion points: unit starts (or the end)
  for (size_t i = 0; i < needles.size(); ++i) {
    const size_t k = rng.below(starts.size() + 1);
    at.push_back(k < starts.size() ? starts[k] : hay.size());
  }
  std::sort(at.begin(), at.end());
  Tokens out;
  size_t from = 0;
  for (size_t i = 0; i < needles.size(); ++i) {
    out.insert(out.end(), hay.begin() + from, hay.begin() + at[i]);
    append(out, nt[i]);
    from = at[i];
  }
  out.insert(out.end(), hay.begin() + from, hay.end());
  return out;
}

std::string digits(SplitMix& rng, int n) {
  uint64_t lo = 1;
  for (int i = 1; i < n; ++i) lo *= 10;
  return std::to_string(lo + rng.below(9 * lo));
}

}  // namespace

const std::vector<std::string>& ruler_task_names() {
  static const std::vector<std::string> names = {"niah_single", "niah_multikey", "niah_multivalue", "vt", "cwe", "fwe"};
  return names;
}

std::vector<std::string> read_haystack(const std::string& file) {
  if (file.empty()) return {kPasskeyFiller[0], kPasskeyFiller[1], kPasskeyFiller[2], kPasskeyFiller[3], kPasskeyFiller[4]};
  std::ifstream in(file);
  if (!in) fail(file, "cannot open the haystack text (--haystack)");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find_first_not_of(" \t\r"), b = line.find_last_not_of(" \t\r");
    if (a != std::string::npos) lines.push_back(line.substr(a, b - a + 1));
  }
  if (lines.empty()) fail(file, "the haystack text has no non-blank line");
  return lines;
}

RulerSample make_ruler_sample(const tok::Tokenizer& tok, const std::vector<std::string>& haystack,
                              const std::string& task, int64_t length, int64_t index, uint64_t seed) {
  const std::string where = "ruler " + task + "@" + std::to_string(length);
  uint64_t h = splitmix64(seed);
  for (uint64_t v : {fnv1a(task), static_cast<uint64_t>(length), static_cast<uint64_t>(index)}) h = splitmix64(h ^ v);
  SplitMix rng(h);
  RulerSample s;
  s.task = task;
  s.length = length;
  s.index = index;
  std::string header, footer;
  Built b;
  auto budget = [&](const std::string& hd, const std::string& ft) {
    return length - static_cast<int64_t>(encode_prompt(tok, hd).size()) - static_cast<int64_t>(enc(tok, ft).size());
  };
  if (task.rfind("niah_", 0) == 0) {
    // RULER niah.py: keys are words, values 7-digit numbers ("numbers" as type_needle_v).
    const int nk = task == "niah_multikey" ? 4 : 1, nv = task == "niah_multivalue" ? 4 : 1;
    const auto words = distinct_words(rng, 2 * nk, 3);
    std::vector<std::string> keys, needles;
    for (int k = 0; k < nk; ++k) keys.push_back(words[2 * k] + "-" + words[2 * k + 1]);
    const int asked = static_cast<int>(rng.below(nk));
    for (int k = 0; k < nk; ++k)
      for (int v = 0; v < nv; ++v) {
        const std::string value = digits(rng, 7);
        needles.push_back("One of the special magic numbers for " + keys[k] + " is: " + value + ".");
        if (k == asked) b.answers.push_back(value);
      }
    shuffle(needles, rng);
    b.query = keys[asked];
    header = "Some special magic numbers are hidden within the following text. Make sure to memorize it. I will "
             "quiz you about the numbers afterwards.\n";
    footer = "\nWhat are all the special magic numbers for " + b.query +
             " mentioned in the provided text? The special magic numbers for " + b.query +
             " mentioned in the provided text are";
    b.body = haystack_with_needles(tok, haystack, rng, needles, budget(header, footer), where);
    s.max_new_tokens = 128;
  } else if (task == "vt") {
    // RULER variable_tracking.py: one chain of 4 hops, names of 5 capital letters, a 5-digit value.
    std::set<std::string> seen;
    std::vector<std::string> names;
    while (names.size() < 5) {
      std::string n;
      for (int i = 0; i < 5; ++i) n += static_cast<char>('A' + rng.below(26));
      if (seen.insert(n).second) names.push_back(n);
    }
    const std::string value = digits(rng, 5);
    std::vector<std::string> chain = {"VAR " + names[0] + " = " + value + "."};
    for (size_t i = 1; i < names.size(); ++i) chain.push_back("VAR " + names[i] + " = VAR " + names[i - 1] + ".");
    b.answers = names;
    b.query = value;
    header = "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n";
    footer = "\nQuestion: Find all variables that are assigned the value " + value +
             " in the text above. Answer: According to the chain(s) of variable assignment in the text above, 5 "
             "variables are assgined the value " + value + ", they are: ";  // RULER's spelling
    b.body = haystack_with_needles(tok, haystack, rng, chain, budget(header, footer), where);
    s.max_new_tokens = 30;
  } else if (task == "cwe") {
    // RULER common_words_extraction.py: 10 common words x 30, the others x 3, as a numbered list.
    header = "Below is a numbered list of words. In these words, some appear more often than others. Memorize the "
             "ones that appear most often.\n";
    footer = "\nQuestion: What are the 10 most common words in the above list? Answer: The top 10 words that "
             "appear most often in the list are:";
    const int64_t room = budget(header, footer);
    const Tokens probe = enc(tok, " 1234. kabimo");
    int64_t uncommon = std::max<int64_t>(0, (room / static_cast<int64_t>(probe.size() + 1) - 300) / 3);
    SplitMix words_rng(rng.next());
    for (;;) {
      SplitMix r = words_rng;
      const auto words = distinct_words(r, 10 + uncommon, 3);
      std::vector<std::string> items;
      for (int64_t w = 0; w < 10 + uncommon; ++w)
        for (int c = 0; c < (w < 10 ? 30 : 3); ++c) items.push_back(words[w]);
      shuffle(items, r);
      Tokens body;
      for (size_t i = 0; i < items.size() && static_cast<int64_t>(body.size()) <= room; ++i)
        append(body, enc(tok, (i ? " " : "") + std::to_string(i + 1) + ". " + items[i]));
      if (static_cast<int64_t>(body.size()) <= room) {
        b.answers.assign(words.begin(), words.begin() + 10);
        b.body = std::move(body);
        break;
      }
      if (uncommon == 0) fail(where, "too short for 10 words x 30 (the cwe list)");
      uncommon = uncommon * 9 / 10;
    }
    s.max_new_tokens = 120;
  } else if (task == "fwe") {
    // RULER freq_words_extraction.py: coded words with Zipf(alpha = 2) counts; the top 3 asked.
    // Counts are the Zipf shares rounded down (not sampled), so the top 3 are always distinct.
    header = "Read the following coded text and track the frequency of each coded word. Find the three most "
             "frequently appeared coded words. ";
    footer = "\nQuestion: Do not provide any explanation. Please ignore the dots '....'. What are the three most "
             "frequently appeared words in the above coded text? Answer: According to the coded text above, the "
             "three most frequently appeared words are:";
    const int64_t room = budget(header, footer);
    const auto vocab = distinct_words(rng, 1000, 2);
    double zsum = 0;
    for (int r = 0; r < 1000; ++r) zsum += 1.0 / ((r + 1.0) * (r + 1.0));
    int64_t n = room / 2;
    SplitMix order_rng(rng.next());
    for (;;) {
      std::vector<std::string> words;
      for (int r = 0; r < 1000; ++r) {
        const int64_t c = static_cast<int64_t>(n / ((r + 1.0) * (r + 1.0)) / zsum);
        for (int64_t i = 0; i < c; ++i) words.push_back(vocab[r]);
      }
      SplitMix r = order_rng;
      shuffle(words, r);
      Tokens body;
      for (size_t i = 0; i < words.size() && static_cast<int64_t>(body.size()) <= room; ++i)
        append(body, enc(tok, (i % 8 == 7 ? " .... " : " ") + words[i]));
      if (static_cast<int64_t>(body.size()) <= room) {
        if (static_cast<int64_t>(n / 9.0 / zsum) <= static_cast<int64_t>(n / 16.0 / zsum))
          fail(where, "too short for distinct top-3 counts (fwe)");
        b.answers = {vocab[0], vocab[1], vocab[2]};
        b.body = std::move(body);
        break;
      }
      n = n * 9 / 10;
    }
    s.max_new_tokens = 50;
  } else {
    fail_option("ruler-tasks", "unknown RULER task '" + task + "' (niah_single, niah_multikey, niah_multivalue, vt, cwe, fwe)");
  }
  s.answers = b.answers;
  // header + body + padding (haystack sentences) + footer: exactly `length` tokens.
  s.prompt = encode_prompt(tok, header);
  const int64_t room = budget(header, footer);
  if (room < static_cast<int64_t>(b.body.size()) || room < 1)
    fail(where, "too short for the task's question (" + std::to_string(length) + " tokens)");
  append(s.prompt, b.body);
  append(s.prompt, fill(tok, haystack, 0, room - static_cast<int64_t>(b.body.size())));
  append(s.prompt, enc(tok, footer));
  if (static_cast<int64_t>(s.prompt.size()) != length) fail(where, "internal: prompt length mismatch");
  return s;
}

std::vector<RulerSample> make_ruler_samples(const tok::Tokenizer& tok, const RulerParams& p) {
  const std::vector<std::string> haystack = read_haystack(p.haystack_file);
  const std::vector<std::string>& tasks = p.tasks.empty() ? ruler_task_names() : p.tasks;
  std::vector<RulerSample> out;
  for (const auto& task : tasks)
    for (int64_t length : p.lengths)
      for (int64_t i = 0; i < p.samples; ++i) out.push_back(make_ruler_sample(tok, haystack, task, length, i, p.seed));
  return out;
}

double string_match_all(const std::string& prediction, const std::vector<std::string>& answers) {
  if (answers.empty()) return 0.0;
  auto lower = [](std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  const std::string p = lower(prediction);
  double hit = 0;
  for (const auto& a : answers) hit += p.find(lower(a)) != std::string::npos ? 1.0 : 0.0;
  return hit / static_cast<double>(answers.size());
}

}  // namespace linearard::eval
