#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "io/atomic_file.h"

namespace linearard::io {
namespace {

using nlohmann::json;

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
};
// Tags and sizes from the safetensors specification (anchors §3.3).
constexpr DTypeEntry kDTypes[] = {
    {DType::BOOL, "BOOL", 1}, {DType::U8, "U8", 1},   {DType::I8, "I8", 1},
    {DType::F8_E5M2, "F8_E5M2", 1}, {DType::F8_E4M3, "F8_E4M3", 1},
    {DType::I16, "I16", 2},   {DType::U16, "U16", 2}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I32, "I32", 4}, {DType::U32, "U32", 4},
    {DType::F32, "F32", 4},   {DType::F64, "F64", 8}, {DType::I64, "I64", 8},
    {DType::U64, "U64", 8},
};

const DTypeEntry& entry(DType dtype) {
  for (const DTypeEntry& e : kDTypes)
    if (e.dtype == dtype) return e;
  fail("safetensors", "invalid DType value " + std::to_string(static_cast<int>(dtype)));
}

// numel * itemsize, or false on 64-bit overflow / negative dimension.
bool byte_count(const std::vector<int64_t>& shape, size_t itemsize, uint64_t* out) {
  uint64_t n = itemsize;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  *out = n;
  return true;
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string range(uint64_t b, uint64_t e) {
  return "[" + std::to_string(b) + ", " + std::to_string(e) + "]";
}

constexpr int kMaxJsonDepth = 64;

// Parses the header JSON, reporting the first duplicate key of any object (nlohmann would
// silently keep the last one; the reference reader refuses duplicates).
json parse_json_rejecting_duplicates(const char* begin, const char* end, const std::string& path) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    // nlohmann copies and prints nested values recursively, so a header of a few hundred KB of
    // '[' would overflow the stack; a valid header nests 3 levels.
    if (depth > kMaxJsonDepth) fail(path, "header nests JSON deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    if (event == json::parse_event_t::object_start) open_objects.emplace_back();
    if (event == json::parse_event_t::object_end) open_objects.pop_back();
    if (event == json::parse_event_t::key && !open_objects.back().insert(parsed.get<std::string>()).second &&
        duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  json j;
  try {
    j = json::parse(begin, end, callback);
  } catch (const json::exception& e) {
    std::string why = e.what();  // ends with the offending token, which can be long
    if (why.size() > 200) why = why.substr(0, 200) + "...";
    fail(path, "header is not valid JSON: " + why);
  }
  if (!duplicate.empty()) fail(path, "header has duplicate key '" + duplicate + "'");
  return j;
}

TensorInfo parse_tensor_entry(const std::string& name, const json& v, uint64_t data_size,
                              const std::string& path) {
  auto bad = [&](const std::string& problem) { fail(path, "tensor '" + name + "' " + problem); };
  if (!v.is_object()) bad("entry is not an object");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) bad(std::string("has no \"") + key + "\"");
  if (!v["dtype"].is_string()) bad("dtype is not a string");
  TensorInfo info;
  const std::string tag = v["dtype"].get<std::string>();
  auto known = std::find_if(std::begin(kDTypes), std::end(kDTypes), [&](const DTypeEntry& e) { return tag == e.name; });
  if (known == std::end(kDTypes)) bad("has unknown dtype '" + tag + "'");
  info.dtype = known->dtype;

  const json& shape = v["shape"];
  if (!shape.is_array()) bad("shape is not an array");
  for (const json& d : shape) {
    if (d.is_number_integer() && d.get<int64_t>() < 0 && !d.is_number_unsigned())
      bad("shape " + shape.dump() + " has a negative dimension");
    if (!d.is_number_unsigned()) bad("shape " + shape.dump() + " has a non-integer or out-of-range dimension");
    if (d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      bad("shape " + shape.dump() + " has a dimension above 2^63");
    info.shape.push_back(d.get<int64_t>());
  }
  uint64_t needed = 0;
  if (!byte_count(info.shape, dtype_size(info.dtype), &needed))
    bad("shape " + shape.dump() + " overflows a 64-bit byte count");

  const json& offs = v["data_offsets"];
  if (!offs.is_array() || offs.size() != 2 || !offs[0].is_number_unsigned() || !offs[1].is_number_unsigned())
    bad("data_offsets " + offs.dump() + " is not [begin, end] of unsigned integers");
  info.begin = offs[0].get<uint64_t>();
  info.end = offs[1].get<uint64_t>();
  if (info.begin > info.end) bad("data_offsets " + range(info.begin, info.end) + " has begin > end");
  if (info.end > data_size)
    bad("data_offsets " + range(info.begin, info.end) + " run past the data area (" +
        std::to_string(data_size) + " bytes): file truncated?");
  if (info.end - info.begin != needed)
    bad("data_offsets " + range(info.begin, info.end) + " span " + std::to_string(info.end - info.begin) +
        " bytes but shape " + format_shape(info.shape) + " of " + dtype_name(info.dtype) + " needs " +
        std::to_string(needed));
  return info;
}

// The reference reader's rule: sorted by offsets, tensors tile [0, data_size) exactly.
void check_coverage(const std::map<std::string, TensorInfo>& tensors, uint64_t data_size,
                    const std::string& path) {
  std::vector<std::pair<const std::string*, const TensorInfo*>> order;
  for (const auto& [name, info] : tensors) order.push_back({&name, &info});
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return std::tie(a.second->begin, a.second->end) < std::tie(b.second->begin, b.second->end);
  });
  uint64_t covered = 0;
  const std::string* prev = nullptr;
  for (const auto& [name, info] : order) {
    if (info->begin < covered)
      fail(path, "tensors '" + *prev + "' and '" + *name + "' overlap (tensor '" + *name +
                     "' starts at " + std::to_string(info->begin) + " before " + std::to_string(covered) + ")");
    if (info->begin > covered)
      fail(path, "gap in data_offsets: bytes " + range(covered, info->begin) + " before tensor '" + *name +
                     "' belong to no tensor");
    covered = info->end;
    prev = name;
  }
  if (covered != data_size)
    fail(path, "data area has " + std::to_string(data_size) + " bytes but tensors end at " +
                   std::to_string(covered) + ": trailing bytes belong to no tensor");
}

}  // namespace

size_t dtype_size(DType dtype) { return entry(dtype).size; }
const char* dtype_name(DType dtype) { return entry(dtype).name; }

DType dtype_from_name(const std::string& name, const std::string& where) {
  for (const DTypeEntry& e : kDTypes)
    if (name == e.name) return e.dtype;
  fail(where, "unknown dtype '" + name + "'");
}

std::string format_shape(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

uint64_t TensorInfo::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t file_size, const std::string& path) {
  if (file_size < 8)
    fail(path, "file is " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");
  uint64_t n = read_u64_le(bytes);
  if (n > file_size - 8)
    fail(path, "header length " + std::to_string(n) + " exceeds file size " + std::to_string(file_size) +
                   " (not a safetensors file?)");
  if (n > kMaxHeaderBytes)
    fail(path, "header length " + std::to_string(n) + " exceeds the 100 MB limit of the format");
  const char* text = reinterpret_cast<const char*>(bytes + 8);
  json j = parse_json_rejecting_duplicates(text, text + n, path);
  if (!j.is_object()) fail(path, "header is not a JSON object");

  SafetensorsHeader header;
  header.data_offset = 8 + n;
  uint64_t data_size = file_size - header.data_offset;
  for (const auto& [key, value] : j.items()) {
    if (key != "__metadata__") {
      header.tensors.emplace(key, parse_tensor_entry(key, value, data_size, path));
      continue;
    }
    if (!value.is_object()) fail(path, "__metadata__ is not an object of strings");
    for (const auto& [mk, mv] : value.items()) {
      if (!mv.is_string()) fail(path, "__metadata__ entry '" + mk + "' is not a string");
      header.metadata[mk] = mv.get<std::string>();
    }
  }
  check_coverage(header.tensors, data_size, path);
  return header;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.file_ = MappedFile::open(path);
  f.header_ = parse_safetensors_header(f.file_->data(), f.file_->size(), path);
  return f;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = header_.tensors.find(name);
  if (it == header_.tensors.end()) fail(path(), "tensor '" + name + "' not found");
  return it->second;
}

const uint8_t* SafetensorsFile::data(const std::string& name) const {
  return file_->data() + header_.data_offset + info(name).begin;
}

std::string make_safetensors_header(const std::vector<TensorBytes>& tensors,
                                    const std::map<std::string, std::string>& metadata,
                                    std::vector<size_t>* order) {
  std::set<std::string> names;
  for (const TensorBytes& t : tensors) {
    const std::string where = "tensor '" + t.name + "'";
    if (t.name.empty() || t.name == "__metadata__") fail(where, "is not a valid tensor name");
    if (!names.insert(t.name).second) fail(where, "is given twice");
    uint64_t needed = 0;
    if (!byte_count(t.shape, dtype_size(t.dtype), &needed))
      fail(where, "shape " + format_shape(t.shape) + " is negative or overflows");
    if (needed != t.nbytes)
      fail(where, "has " + std::to_string(t.nbytes) + " bytes but shape " + format_shape(t.shape) + " of " +
                      dtype_name(t.dtype) + " needs " + std::to_string(needed));
    if (t.nbytes > 0 && t.data == nullptr) fail(where, "has no data");
  }
  // The Rust reference's layout: descending alignment (= dtype order), then name.
  order->resize(tensors.size());
  std::iota(order->begin(), order->end(), 0);
  std::sort(order->begin(), order->end(), [&](size_t a, size_t b) {
    if (tensors[a].dtype != tensors[b].dtype) return tensors[a].dtype > tensors[b].dtype;
    return tensors[a].name < tensors[b].name;
  });
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  if (!metadata.empty()) j["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t i : *order) {
    const TensorBytes& t = tensors[i];
    j[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string text;
  try {
    text = j.dump();
  } catch (const nlohmann::json::exception& e) {
    fail("safetensors header", std::string("cannot encode (names must be UTF-8): ") + e.what());
  }
  text.resize((text.size() + 7) / 8 * 8, ' ');  // data area starts 8-byte aligned
  return text;
}

void write_safetensors(const std::string& path, const std::vector<TensorBytes>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<size_t> order;
  std::string header;
  try {
    header = make_safetensors_header(tensors, metadata, &order);
  } catch (const Error& e) {
    fail(path, e.what());
  }
  uint64_t total = 8 + header.size();
  for (const TensorBytes& t : tensors) total += t.nbytes;
  check_free_space(parent_dir(path), total);

  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
  AtomicFile file(path);
  file.write(len, 8);
  file.write(header.data(), header.size());
  for (size_t i : order) file.write(tensors[i].data, tensors[i].nbytes);
  file.commit();
}

std::vector<std::string> write_sharded_safetensors(const std::string& dir, const std::vector<TensorBytes>& tensors,
                                                   const std::map<std::string, std::string>& metadata,
                                                   uint64_t max_shard_bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, "cannot create directory: " + ec.message());

  // huggingface_hub's split_state_dict_into_shards: walk in order, start a new shard when the next
  // tensor would overflow this one; a tensor larger than the limit gets a shard of its own.
  std::vector<std::vector<TensorBytes>> shards;
  std::vector<TensorBytes> current;
  uint64_t current_bytes = 0, total_bytes = 0;
  for (const TensorBytes& t : tensors) {
    total_bytes += t.nbytes;
    if (t.nbytes > max_shard_bytes) {
      shards.push_back({t});
      continue;
    }
    if (current_bytes + t.nbytes > max_shard_bytes) {
      shards.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(t);
    current_bytes += t.nbytes;
  }
  if (!current.empty() || shards.empty()) shards.push_back(std::move(current));
  check_free_space(dir, total_bytes);

  std::vector<std::string> written;
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t k = 0; k < shards.size(); ++k) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", k + 1, shards.size());
    written.push_back(shards.size() == 1 ? "model.safetensors" : name);
    write_safetensors(dir + "/" + written.back(), shards[k], metadata);
    for (const TensorBytes& t : shards[k]) weight_map[t.name] = written.back();
  }
  if (shards.size() > 1) {
    nlohmann::json index_meta = {{"total_size", total_bytes}};
    for (const auto& [k, v] : metadata)
      if (k != "total_size") index_meta[k] = v;
    nlohmann::json index = {{"metadata", index_meta}, {"weight_map", weight_map}};
    written.push_back("model.safetensors.index.json");
    write_file_atomic(dir + "/" + written.back(), index.dump(2) + "\n");
  }
  // Remove what an earlier save left under the same naming scheme (as huggingface_hub does), so a
  // stale index can never point a reader at old shards.
  static const std::regex stale(R"(model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?)");
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    std::string fname = e.path().filename().string();
    if (std::regex_match(fname, stale) && std::find(written.begin(), written.end(), fname) == written.end())
      fs::remove(e.path(), ec);
  }
  return written;
}

}  // namespace linearard::io
