#include "io/checkpoint.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/error.h"

// safetensors data is little-endian; from_blob views it as-is.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors views need a little-endian host");

namespace linearard::io {
namespace {

namespace fs = std::filesystem;

struct TypePair {
  DType dtype;
  at::ScalarType type;
};
// safetensors F8_E4M3 / F8_E5M2 are torch's float8_e4m3fn / float8_e5m2 (safetensors.torch).
constexpr TypePair kTypes[] = {
    {DType::BOOL, at::kBool},        {DType::U8, at::kByte},           {DType::I8, at::kChar},
    {DType::F8_E5M2, at::kFloat8_e5m2}, {DType::F8_E4M3, at::kFloat8_e4m3fn},
    {DType::I16, at::kShort},        {DType::U16, at::kUInt16},        {DType::F16, at::kHalf},
    {DType::BF16, at::kBFloat16},    {DType::I32, at::kInt},           {DType::U32, at::kUInt32},
    {DType::F32, at::kFloat},        {DType::F64, at::kDouble},        {DType::I64, at::kLong},
    {DType::U64, at::kUInt64},
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

at::ScalarType to_scalar_type(DType dtype) {
  for (const TypePair& p : kTypes)
    if (p.dtype == dtype) return p.type;
  fail("safetensors", std::string("no torch type for dtype ") + dtype_name(dtype));
}

DType from_scalar_type(at::ScalarType type, const std::string& where) {
  for (const TypePair& p : kTypes)
    if (p.type == type) return p.dtype;
  fail(where, std::string("dtype ") + c10::toString(type) + " cannot be stored in safetensors");
}

CheckpointWeights::CheckpointWeights(const std::string& dir) : dir_(dir) {
  std::error_code ec;
  if (fs::is_regular_file(dir, ec)) {  // one weights file given directly
    source_ = fs::path(dir).filename().string();
    files_.push_back(SafetensorsFile::open(dir));
    for (const auto& [name, info] : files_[0].tensors()) where_[name] = 0;
    return;
  }
  if (!fs::is_directory(dir, ec)) fail(dir, "no such directory or file");
  const std::string index = "model.safetensors.index.json";
  if (fs::exists(fs::path(dir) / index, ec)) {
    source_ = index;
    open_index((fs::path(dir) / index).string());
    return;
  }
  if (fs::exists(fs::path(dir) / "model.safetensors", ec)) {
    source_ = "model.safetensors";
  } else {
    std::vector<std::string> found;
    for (const fs::directory_entry& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".safetensors") found.push_back(e.path().filename().string());
    if (found.empty()) fail(dir, "no *.safetensors weights found");
    if (found.size() > 1)
      fail(dir, std::to_string(found.size()) + " *.safetensors files but no " + index + " to say which to use");
    source_ = found[0];
  }
  files_.push_back(SafetensorsFile::open((fs::path(dir) / source_).string()));
  for (const auto& [name, info] : files_[0].tensors()) where_[name] = 0;
}

void CheckpointWeights::open_index(const std::string& index_path) {
  nlohmann::json j;
  try {
    // Depth-limited like the safetensors header: nlohmann recurses once per nesting level.
    constexpr int kMaxJsonDepth = 64;
    j = nlohmann::json::parse(read_text(index_path), [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
      if (depth > kMaxJsonDepth)
        fail(index_path, "nests JSON deeper than " + std::to_string(kMaxJsonDepth) + " levels");
      return true;
    });
  } catch (const nlohmann::json::exception& e) {
    fail(index_path, std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    fail(index_path, "has no \"weight_map\" object");
  std::map<std::string, size_t> file_index;  // shard file name -> index into files_
  for (const auto& [name, file] : j["weight_map"].items()) {
    if (!file.is_string()) fail(index_path, "weight_map entry '" + name + "' is not a file name string");
    const std::string shard = file.get<std::string>();
    // Shards live in the model folder: no absolute paths, no way out through "..".
    const fs::path relative(shard);
    bool escapes = shard.empty() || relative.is_absolute();
    for (const auto& part : relative) escapes = escapes || part == "..";
    if (escapes) fail(index_path, "shard '" + shard + "' (for tensor '" + name + "') is not a file inside the model folder");
    auto it = file_index.find(shard);
    if (it == file_index.end()) {
      fs::path shard_path = fs::path(dir_) / shard;
      std::error_code ec;
      if (!fs::is_regular_file(shard_path, ec))
        fail(index_path, "shard '" + shard + "' (for tensor '" + name + "') does not exist");
      files_.push_back(SafetensorsFile::open(shard_path.string()));
      it = file_index.emplace(shard, files_.size() - 1).first;
    }
    if (!files_[it->second].has(name))
      fail(index_path, "tensor '" + name + "' is mapped to '" + shard + "' but that file has no such tensor");
    where_[name] = it->second;
  }
}

std::vector<std::string> CheckpointWeights::names() const {
  std::vector<std::string> out;
  for (const auto& [name, file] : where_) out.push_back(name);
  return out;
}

const TensorInfo& CheckpointWeights::info(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail(dir_, "tensor '" + name + "' not found (" + source_ + ")");
  return files_[it->second].info(name);
}

at::Tensor CheckpointWeights::get(const std::string& name) const {
  const TensorInfo& ti = info(name);
  const SafetensorsFile& file = files_[where_.at(name)];
  const at::TensorOptions options = at::TensorOptions().dtype(to_scalar_type(ti.dtype));
  if (ti.nbytes() == 0) return at::empty(ti.shape, options);
  const uint8_t* bytes = file.data(name);
  if (reinterpret_cast<uintptr_t>(bytes) % dtype_size(ti.dtype) == 0) {
    // The deleter owns a reference to the mapping: the view outlives this object safely.
    std::shared_ptr<const MappedFile> keep = file.mapping();
    // The caller reads what it asked for: map it in one call rather than fault by fault.
    keep->populate(static_cast<size_t>(bytes - keep->data()), ti.nbytes());
    return at::from_blob(const_cast<uint8_t*>(bytes), ti.shape, [keep](void*) {}, options);
  }
  at::Tensor copy = at::empty(ti.shape, options);
  std::memcpy(copy.data_ptr(), bytes, ti.nbytes());
  return copy;
}

at::Tensor CheckpointWeights::get(const std::string& name, at::IntArrayRef expected_shape) const {
  const TensorInfo& ti = info(name);
  if (at::IntArrayRef(ti.shape) != expected_shape)
    fail(dir_, "tensor '" + name + "' has shape " + format_shape(ti.shape) + ", expected " +
                   format_shape(expected_shape.vec()));
  return get(name);
}

void save_tensors(const std::string& path_or_dir, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata, uint64_t max_shard_bytes) {
  std::vector<at::Tensor> cpu;  // keeps the contiguous copies alive while writing
  std::vector<TensorBytes> bytes;
  cpu.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    cpu.push_back(t.detach().to(at::kCPU).contiguous());
    const at::Tensor& c = cpu.back();
    bytes.push_back({name, from_scalar_type(c.scalar_type(), path_or_dir + ": tensor '" + name + "'"),
                     c.sizes().vec(), c.data_ptr(), c.nbytes()});
  }
  const std::string suffix = ".safetensors";
  bool single = path_or_dir.size() > suffix.size() &&
                path_or_dir.compare(path_or_dir.size() - suffix.size(), suffix.size(), suffix) == 0;
  if (single)
    write_safetensors(path_or_dir, bytes, metadata);
  else
    write_sharded_safetensors(path_or_dir, bytes, metadata, max_shard_bytes);
}

}  // namespace linearard::io
