// libFuzzer target: the adapter's JSON form (train/adapter_spec.cpp, torch-free), as adapter.json
// and train_state.json's task.adapter hold it: adapter_spec_from_json on the parsed bytes (parsed
// with the same 64-level depth limit as the readers of those files), and for what it accepts, the
// round trip: to_json then adapter_spec_from_json gives the same spec.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.h"
#include "train/adapter_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace linearard;
  using nlohmann::json;
  const std::string text(reinterpret_cast<const char*>(data), size);
  json j;
  try {
    j = json::parse(text, [](int depth, json::parse_event_t, json&) {
      if (depth > 64) fail("adapter.json", "JSON nested deeper than 64 levels");
      return true;
    });
  } catch (const json::exception&) {
    return 0;
  } catch (const Error&) {
    return 0;
  }
  try {
    const train::AdapterSpec spec = train::adapter_spec_from_json(j, "adapter.json");
    const json written = train::to_json(spec);
    (void)written.dump();
    if (train::adapter_spec_from_json(written, "round trip") != spec) std::abort();
  } catch (const Error&) {
  }
  return 0;
}
