#include "worker/t5/special_tokens.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace magi {
namespace {

// Correctly rounded float64 -> float16 (round to nearest even), as numpy's astype does;
// going through float32 first could round twice.
uint16_t DoubleToHalf(double x) {
  uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  x = std::fabs(x);
  if (std::isnan(x)) return sign | 0x7E00;
  if (x >= 65520.0) return sign | 0x7C00;  // rounds to inf
  if (x < std::ldexp(1.0, -25)) {
    // Below half the smallest subnormal: 0, except exactly-halfway handled below.
    return sign;
  }
  int e;
  std::frexp(x, &e);  // x = m * 2^e, m in [0.5, 1)
  int exp = e - 1;    // x = 1.f * 2^exp
  double scaled;
  uint32_t bits;
  if (exp < -14) {  // subnormal: units of 2^-24
    scaled = std::ldexp(x, 24);
    double r = std::nearbyint(scaled);  // default rounding mode: nearest even
    bits = static_cast<uint32_t>(r);
    return sign | static_cast<uint16_t>(bits);  // 1024 carries into the exponent correctly
  }
  scaled = std::ldexp(x, 10 - exp);  // in [1024, 2048)
  double r = std::nearbyint(scaled);
  uint32_t mant = static_cast<uint32_t>(r);
  if (mant == 2048) {
    mant = 1024;
    ++exp;
  }
  if (exp > 15) return sign | 0x7C00;
  return sign | static_cast<uint16_t>(((exp + 15) << 10) | (mant - 1024));
}

at::Tensor RoundToHalf(const at::Tensor& t) {
  at::Tensor d = t.to(at::kDouble).contiguous();
  at::Tensor h = at::empty(d.sizes(), at::TensorOptions().dtype(at::kHalf));
  const double* src = d.data_ptr<double>();
  auto* dst = reinterpret_cast<uint16_t*>(h.data_ptr());
  for (int64_t i = 0; i < d.numel(); ++i) dst[i] = DoubleToHalf(src[i]);
  return h.to(at::kFloat);
}

uint32_t Le32(const unsigned char* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t(p[3]) << 24); }
uint16_t Le16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// Parses one NPY v1/v2 blob to a tensor.
absl::StatusOr<at::Tensor> ParseNpy(const std::string& data, const std::string& where) {
  auto bad = [&](const std::string& why) { return absl::InvalidArgumentError(absl::StrCat(where, ": ", why)); };
  if (data.size() < 10 || data.compare(0, 6, "\x93NUMPY") != 0) return bad("not an NPY array");
  const auto* u = reinterpret_cast<const unsigned char*>(data.data());
  const int major = u[6];
  size_t hlen, hstart;
  if (major == 1) {
    hlen = Le16(u + 8);
    hstart = 10;
  } else if (major == 2 || major == 3) {
    if (data.size() < 12) return bad("truncated NPY header");
    hlen = Le32(u + 8);
    hstart = 12;
  } else {
    return bad(absl::StrCat("unsupported NPY version ", major));
  }
  if (hstart + hlen > data.size()) return bad("truncated NPY header");
  const std::string header = data.substr(hstart, hlen);
  auto field = [&](const std::string& key) -> std::string {
    const size_t p = header.find("'" + key + "'");
    if (p == std::string::npos) return "";
    size_t q = header.find(':', p);
    if (q == std::string::npos) return "";
    ++q;
    while (q < header.size() && header[q] == ' ') ++q;
    if (q < header.size() && header[q] == '(') return header.substr(q, header.find(')', q) - q + 1);
    if (q < header.size() && header[q] == '\'') return header.substr(q + 1, header.find('\'', q + 1) - q - 1);
    return header.substr(q, header.find_first_of(",}", q) - q);
  };
  const std::string descr = field("descr"), fortran = field("fortran_order"), shape_s = field("shape");
  at::ScalarType type;
  size_t esize;
  if (descr == "<f8") {
    type = at::kDouble, esize = 8;
  } else if (descr == "<f4") {
    type = at::kFloat, esize = 4;
  } else if (descr == "<f2") {
    type = at::kHalf, esize = 2;
  } else {
    return bad(absl::StrCat("dtype '", descr, "' is not one of <f8, <f4, <f2"));
  }
  if (fortran != "False") return bad("fortran_order arrays are not supported");
  std::vector<int64_t> shape;
  int64_t numel = 1;
  {
    std::string s = shape_s;
    for (char& c : s) {
      if (c == '(' || c == ')' || c == ',') c = ' ';
    }
    std::istringstream in(s);
    int64_t v;
    while (in >> v) {
      if (v < 0 || v > (int64_t{1} << 32)) return bad("bad shape");
      shape.push_back(v);
      numel *= v;
    }
  }
  const size_t start = hstart + hlen;
  if (data.size() - start != static_cast<size_t>(numel) * esize) {
    return bad(absl::StrCat("data size ", data.size() - start, " does not match shape ", shape_s));
  }
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type));
  std::memcpy(t.data_ptr(), data.data() + start, data.size() - start);
  return t;
}

absl::Status CheckToken(const at::Tensor& t, const char* name, int64_t min_rows, int64_t width) {
  if (!t.defined() || t.dim() != 2 || t.size(0) < min_rows || (width > 0 && t.size(1) != width) || t.size(1) < 1) {
    return absl::InvalidArgumentError(absl::StrCat("special tokens: '", name, "' must be [", min_rows == 1 ? "1" : ">=17",
                                                   ", C] with the same C for all arrays"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SpecialTokens>> SpecialTokens::FromTensors(const at::Tensor& caption,
                                                                          const at::Tensor& logo,
                                                                          const at::Tensor& other) {
  MAGI_RETURN_IF_ERROR(CheckToken(caption, "caption_token", 1, 0));
  const int64_t C = caption.size(1);
  MAGI_RETURN_IF_ERROR(CheckToken(logo, "logo_token", 1, C));
  MAGI_RETURN_IF_ERROR(CheckToken(other, "other_tokens", 17, C));
  std::unique_ptr<SpecialTokens> s(new SpecialTokens());
  s->caption_ = RoundToHalf(caption.slice(0, 0, 1));
  s->logo_ = RoundToHalf(logo.slice(0, 0, 1));
  s->other_ = RoundToHalf(other);
  return s;
}

absl::StatusOr<std::unique_ptr<SpecialTokens>> SpecialTokens::Load(const std::string& npz_path) {
  std::ifstream in(npz_path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("special tokens file '", npz_path, "' cannot be opened"));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string zip = ss.str();
  const auto* u = reinterpret_cast<const unsigned char*>(zip.data());
  std::map<std::string, at::Tensor> arrays;
  size_t p = 0;
  while (p + 30 <= zip.size() && Le32(u + p) == 0x04034b50) {  // local file headers
    const uint16_t flags = Le16(u + p + 6), method = Le16(u + p + 8);
    uint32_t csize = Le32(u + p + 18);
    const uint32_t usize = Le32(u + p + 22);
    const uint16_t nlen = Le16(u + p + 26), xlen = Le16(u + p + 28);
    if (p + 30 + nlen + xlen > zip.size()) break;
    std::string name = zip.substr(p + 30, nlen);
    const size_t data = p + 30 + nlen + xlen;
    if (method != 0) {
      return absl::InvalidArgumentError(absl::StrCat("special tokens file '", npz_path, "': entry '", name,
                                                     "' is compressed (method ", method,
                                                     "); only uncompressed np.savez files are supported"));
    }
    if (flags & 0x08) csize = usize;  // sizes in a data descriptor; stored entries have csize == usize
    if (csize == 0xFFFFFFFFu || data + csize > zip.size()) {
      return absl::InvalidArgumentError(absl::StrCat("special tokens file '", npz_path, "': entry '", name,
                                                     "' is truncated or uses ZIP64"));
    }
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
    MAGI_ASSIGN_OR_RETURN(arrays[name], ParseNpy(zip.substr(data, csize), absl::StrCat(npz_path, ":", name)));
    p = data + csize + ((flags & 0x08) ? 16 : 0);
  }
  for (const char* key : {"caption_token", "logo_token", "other_tokens"}) {
    if (!arrays.count(key)) {
      return absl::InvalidArgumentError(absl::StrCat("special tokens file '", npz_path, "' has no array '", key, "'"));
    }
  }
  return FromTensors(arrays["caption_token"], arrays["logo_token"], arrays["other_tokens"]);
}

at::Tensor SpecialTokens::other(int64_t row) const { return other_.slice(0, row, row + 1); }

namespace {

// Prepends `token` [1, C] at sequence position 0 of every chunk row of y [n, L, C] (mask
// [n, L] gets a leading 1) and cuts back to L.
void Prepend(at::Tensor& y, at::Tensor* mask, const at::Tensor& token) {
  const int64_t n = y.size(0), L = y.size(1), C = y.size(2);
  y = at::cat({token.view({1, 1, C}).expand({n, 1, C}), y}, 1).slice(1, 0, L);
  if (mask) *mask = at::cat({at::ones({n, 1}, mask->options()), *mask}, 1).slice(1, 0, L);
}

}  // namespace

absl::StatusOr<CaptionRows> BuildCaptionRows(const std::vector<at::Tensor>& captions,
                                             const std::vector<at::Tensor>& masks, const at::Tensor& null_caption,
                                             int64_t chunk_num, int64_t chunk_offset, const SpecialTokens* tokens,
                                             const CaptionRowOptions& o) {
  if (chunk_num < 1 || chunk_offset < 0 || chunk_offset >= chunk_num) {
    return absl::InvalidArgumentError(absl::StrCat("caption rows: need 0 <= chunk_offset < chunk_num, got chunk_offset ",
                                                   chunk_offset, " and chunk_num ", chunk_num));
  }
  if (!null_caption.defined() || null_caption.dim() != 2) {
    return absl::InvalidArgumentError("caption rows: null_caption_embedding must be [L, C]");
  }
  const int64_t L = null_caption.size(0), C = null_caption.size(1), nd = chunk_num - chunk_offset;
  if (captions.size() != masks.size() || (captions.size() != 1 && static_cast<int64_t>(captions.size()) != nd)) {
    return absl::InvalidArgumentError(absl::StrCat("caption rows: need 1 or ", nd,
                                                   " (one per denoised chunk) captions with as many masks, got ",
                                                   captions.size(), " captions and ", masks.size(), " masks"));
  }
  std::vector<at::Tensor> ys, ms;
  for (size_t i = 0; i < captions.size(); ++i) {
    const at::Tensor& e = captions[i];
    const at::Tensor& m = masks[i];
    if (!e.defined() || e.dim() != 3 || e.size(0) != 1 || e.size(1) != L || e.size(2) != C) {
      return absl::InvalidArgumentError(
          absl::StrCat("caption rows: captions[", i, "] must be [1, ", L, ", ", C, "] like null_caption_embedding"));
    }
    if (!m.defined() || m.dim() != 2 || m.size(0) != 1 || m.size(1) != L) {
      return absl::InvalidArgumentError(absl::StrCat("caption rows: masks[", i, "] must be [1, ", L, "]"));
    }
    ys.push_back(e.to(at::kFloat));
    ms.push_back(m.to(at::kFloat));
  }
  at::Tensor y = ys.size() == 1 ? ys[0].expand({nd, L, C}).contiguous() : at::cat(ys, 0);
  at::Tensor mask = ms.size() == 1 ? ms[0].expand({nd, L}).contiguous() : at::cat(ms, 0);

  const bool any = o.static_first_frames || o.dynamic_first_frames || o.borderness || o.hq || o.three_d_model ||
                   o.two_d_anime || o.duration || o.negative_prompt;
  if (any && (!tokens || tokens->width() != C)) {
    return absl::InvalidArgumentError(absl::StrCat("caption rows: special tokens are enabled but ",
                                                   tokens ? absl::StrCat("their width ", tokens->width(),
                                                                         " differs from the caption width ", C)
                                                          : std::string("none were loaded")));
  }
  // Application order of the reference (get_special_token_keys); each prepends, so the last
  // applied ends up first.
  if (o.static_first_frames) Prepend(y, &mask, tokens->other(2));
  if (o.dynamic_first_frames) Prepend(y, &mask, tokens->other(3));
  if (o.borderness) Prepend(y, &mask, tokens->other(4));
  if (o.hq) Prepend(y, &mask, tokens->other(1));
  if (o.three_d_model) Prepend(y, &mask, tokens->other(15));
  if (o.two_d_anime) Prepend(y, &mask, tokens->other(16));
  if (o.duration) {
    // Chunk i of the nd denoised chunks: DURATION_k with k-1 = min(chunks after it, 7).
    std::vector<at::Tensor> yr, mr;
    for (int64_t i = 0; i < nd; ++i) {
      at::Tensor yi = y.slice(0, i, i + 1), mi = mask.slice(0, i, i + 1);
      Prepend(yi, &mi, tokens->other(7 + std::min<int64_t>(nd - 1 - i, 7)));
      yr.push_back(yi);
      mr.push_back(mi);
    }
    y = at::cat(yr, 0);
    mask = at::cat(mr, 0);
  }
  at::Tensor nullf = null_caption.to(at::kFloat).unsqueeze(0);  // [1, L, C]
  if (chunk_offset > 0) {
    y = at::cat({nullf.expand({chunk_offset, L, C}), y}, 0);
    mask = at::cat({at::zeros({chunk_offset, L}, mask.options()), mask}, 0);
  }
  at::Tensor null_rows = nullf.expand({chunk_num, L, C}).contiguous();
  if (o.negative_prompt) {
    Prepend(null_rows, nullptr, tokens->caption());
    Prepend(null_rows, nullptr, tokens->logo());
    Prepend(null_rows, nullptr, tokens->other(0));
    Prepend(null_rows, nullptr, tokens->other(4));
  }
  at::Tensor null_mask = at::zeros({chunk_num, L}, mask.options());
  null_mask.slice(1, 0, std::min<int64_t>(50, L)).fill_(1.0);
  CaptionRows rows;
  rows.y = at::stack({y, null_rows}, 0);
  rows.mask = at::stack({mask, null_mask}, 0);
  return rows;
}

}  // namespace magi
