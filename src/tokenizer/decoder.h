// tokenizer.json decoders (HF decoders/): ByteLevel, Metaspace, and Sequence of Replace,
// ByteFallback, Fuse, Strip. Each maps the list of token strings; decode joins the result.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace linearard::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// nullptr for JSON null (HF then joins tokens with spaces). `where` names the file for errors.
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const std::string& where);

}  // namespace linearard::tok
