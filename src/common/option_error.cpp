#include "common/option_error.h"

#include <utility>

namespace linearard {

OptionError::OptionError(std::string option, std::string detail)
    : Error(option + detail), option_(std::move(option)), detail_(std::move(detail)) {}

void fail_option(const std::string& option, const std::string& problem) {
  throw OptionError(option, ": " + problem);
}

void fail_option_value(const std::string& option, const std::string& value, const std::string& problem) {
  throw OptionError(option, " " + value + ": " + problem);
}

}  // namespace linearard
