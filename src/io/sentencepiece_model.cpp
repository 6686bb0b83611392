// See sentencepiece_model.h. Wire format: protobuf's encoding guide (tag = field << 3 | wire type).
// ModelProto: 1 = repeated SentencePiece pieces, 3 = NormalizerSpec normalizer_spec.
// SentencePiece: 1 = string piece, 2 = float score, 3 = Type type.
// NormalizerSpec: 3 = bool add_dummy_prefix.
#include "io/sentencepiece_model.h"

#include <cstring>

#include "common/error.h"

namespace linearard::io {
namespace {

class Reader {
 public:
  Reader(const uint8_t* p, size_t n, const std::string& path) : p_(p), n_(n), path_(path) {}
  bool done() const { return pos_ >= n_; }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= n_) fail(path_, "truncated varint at byte " + std::to_string(pos_));
      const uint8_t b = p_[pos_++];
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    fail(path_, "varint longer than 10 bytes at byte " + std::to_string(pos_));
  }
  Reader sub() {
    const uint64_t len = varint();
    if (len > n_ - pos_) fail(path_, "length-delimited field of " + std::to_string(len) + " bytes runs past the end");
    Reader r(p_ + pos_, static_cast<size_t>(len), path_);
    pos_ += static_cast<size_t>(len);
    return r;
  }
  std::string string() {
    Reader r = sub();
    return std::string(reinterpret_cast<const char*>(r.p_), r.n_);
  }
  uint32_t fixed32() {
    if (n_ - pos_ < 4) fail(path_, "truncated 32-bit field");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) v |= static_cast<uint32_t>(p_[pos_ + k]) << (8 * k);
    pos_ += 4;
    return v;
  }
  void skip(uint32_t wire) {
    switch (wire) {
      case 0: varint(); return;
      case 1:
        if (n_ - pos_ < 8) fail(path_, "truncated 64-bit field");
        pos_ += 8;
        return;
      case 2: sub(); return;
      case 5: fixed32(); return;
      default: fail(path_, "unsupported protobuf wire type " + std::to_string(wire));
    }
  }

 private:
  const uint8_t* p_;
  size_t n_, pos_ = 0;
  const std::string& path_;
};

SentencePieceModel::Piece read_piece(Reader r, const std::string& path) {
  SentencePieceModel::Piece p;
  while (!r.done()) {
    const uint64_t tag = r.varint();
    const uint32_t field = static_cast<uint32_t>(tag >> 3), wire = static_cast<uint32_t>(tag & 7);
    if (field == 1 && wire == 2) {
      p.piece = r.string();
    } else if (field == 2 && wire == 5) {
      const uint32_t bits = r.fixed32();
      std::memcpy(&p.score, &bits, 4);
    } else if (field == 3 && wire == 0) {
      const uint64_t t = r.varint();
      if (t < 1 || t > 6) fail(path, "piece type " + std::to_string(t) + " is not 1..6");
      p.type = static_cast<int32_t>(t);
    } else {
      r.skip(wire);
    }
  }
  return p;
}

}  // namespace

SentencePieceModel parse_sentencepiece_model(const uint8_t* bytes, size_t size, const std::string& path) {
  SentencePieceModel m;
  Reader r(bytes, size, path);
  while (!r.done()) {
    const uint64_t tag = r.varint();
    const uint32_t field = static_cast<uint32_t>(tag >> 3), wire = static_cast<uint32_t>(tag & 7);
    if (field == 1 && wire == 2) {
      m.pieces.push_back(read_piece(r.sub(), path));
    } else if (field == 3 && wire == 2) {
      Reader n = r.sub();
      while (!n.done()) {
        const uint64_t t = n.varint();
        if ((t >> 3) == 3 && (t & 7) == 0) m.add_dummy_prefix = n.varint() != 0;
        else n.skip(static_cast<uint32_t>(t & 7));
      }
    } else {
      r.skip(wire);
    }
  }
  if (m.pieces.empty()) fail(path, "no pieces (not a SentencePiece model?)");
  return m;
}

}  // namespace linearard::io
