// An option's bad value. The error names the option as the library spells it (the --config key:
// "context", "lora-rank", "rope-scaling"), never as a command-line flag, so that each caller spells
// it its own way: the CLI as "--context" (src/cli/main.cpp), a Python binding as the keyword
// argument. transformers' TrainingArguments names its arguments the same way and leaves the flag
// spelling to its argument parser.
#pragma once
#include <string>

#include "common/error.h"

namespace linearard {

class OptionError : public Error {
 public:
  // what() is option + detail; detail is ": <problem>", or " <value>: <problem>" when the message
  // names a value of the option too (the file it points to).
  OptionError(std::string option, std::string detail);
  const std::string& option() const { return option_; }
  const std::string& detail() const { return detail_; }
  // The message with the option spelled `spelling` ("--context" on the command line).
  std::string message_as(const std::string& spelling) const { return spelling + detail_; }

 private:
  std::string option_, detail_;
};

// Throws OptionError(option, ": <problem>"): the value of `option` (its library name) is wrong.
[[noreturn]] void fail_option(const std::string& option, const std::string& problem);
// Throws OptionError(option, " <value>: <problem>"), naming the value too (the path it gives).
[[noreturn]] void fail_option_value(const std::string& option, const std::string& value, const std::string& problem);

// Runs parse(option) for a parser that names its errors' source by the `where` string it is given
// (model::parse_rope_override, eval::parse_length) and rethrows its errors that start with that
// name as OptionErrors of `option`.
template <class Parse>
auto parse_option(const std::string& option, Parse&& parse) -> decltype(parse(option)) {
  try {
    return parse(option);
  } catch (const OptionError&) {
    throw;
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.compare(0, option.size(), option) != 0) throw;
    throw OptionError(option, what.substr(option.size()));
  }
}

}  // namespace linearard
