#include "common/error.h"

namespace linearard {

void fail(const std::string& where, const std::string& problem) {
  throw Error(where.empty() ? problem : where + ": " + problem);
}

}  // namespace linearard
