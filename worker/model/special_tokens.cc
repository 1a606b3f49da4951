#include "worker/model/special_tokens.h"

#include <ATen/ATen.h>

#include <array>
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

uint32_t Crc32(const std::string& data) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// NPY v1.0, '<f8', C order, header padded to a multiple of 64 bytes (numpy's layout).
std::string NpyFloat64(const at::Tensor& t) {
  at::Tensor d = t.to(at::kCPU, at::kDouble).contiguous();
  std::string shape = "(";
  for (int64_t i = 0; i < d.dim(); ++i) absl::StrAppend(&shape, i ? ", " : "", d.size(i));
  shape += d.dim() == 1 ? ",)" : ")";  // numpy's repr of the shape tuple
  std::string header = absl::StrCat("{'descr': '<f8', 'fortran_order': False, 'shape': ", shape, ", }");
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string npy("\x93NUMPY\x01\x00", 8);
  npy.push_back(static_cast<char>(header.size() & 0xFF));
  npy.push_back(static_cast<char>(header.size() >> 8));
  npy += header;
  npy.append(reinterpret_cast<const char*>(d.data_ptr()), d.nbytes());
  return npy;
}

void PutLe(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

}  // namespace

absl::Status WriteSpecialTokens(const std::string& npz_path, const at::Tensor& caption, const at::Tensor& logo,
                                const at::Tensor& other) {
  // Same shape rules as Load (through FromTensors), so a written file always loads.
  MAGI_RETURN_IF_ERROR(SpecialTokens::FromTensors(caption, logo, other).status());
  std::string zip, central;
  int entries = 0;
  for (const auto& [name, t] : std::vector<std::pair<std::string, at::Tensor>>{
           {"caption_token.npy", caption}, {"logo_token.npy", logo}, {"other_tokens.npy", other}}) {
    const std::string npy = NpyFloat64(t);
    if (npy.size() >= 0xFFFFFFFFu) return absl::InvalidArgumentError("special tokens: array too large for a ZIP entry");
    const uint32_t crc = Crc32(npy), offset = static_cast<uint32_t>(zip.size());
    // Local file header: version 20, no flags, stored, no time stamp.
    PutLe(&zip, 0x04034b50, 4); PutLe(&zip, 20, 2); PutLe(&zip, 0, 2); PutLe(&zip, 0, 2);
    PutLe(&zip, 0, 2); PutLe(&zip, 0x21, 2);  // 1980-01-01
    PutLe(&zip, crc, 4); PutLe(&zip, npy.size(), 4); PutLe(&zip, npy.size(), 4);
    PutLe(&zip, name.size(), 2); PutLe(&zip, 0, 2);
    zip += name;
    zip += npy;
    PutLe(&central, 0x02014b50, 4); PutLe(&central, 20, 2); PutLe(&central, 20, 2); PutLe(&central, 0, 2);
    PutLe(&central, 0, 2); PutLe(&central, 0, 2); PutLe(&central, 0x21, 2);
    PutLe(&central, crc, 4); PutLe(&central, npy.size(), 4); PutLe(&central, npy.size(), 4);
    PutLe(&central, name.size(), 2); PutLe(&central, 0, 2); PutLe(&central, 0, 2);
    PutLe(&central, 0, 2); PutLe(&central, 0, 2); PutLe(&central, 0, 4); PutLe(&central, offset, 4);
    central += name;
    ++entries;
  }
  const uint32_t central_offset = static_cast<uint32_t>(zip.size());
  zip += central;
  PutLe(&zip, 0x06054b50, 4); PutLe(&zip, 0, 2); PutLe(&zip, 0, 2); PutLe(&zip, entries, 2);
  PutLe(&zip, entries, 2); PutLe(&zip, central.size(), 4); PutLe(&zip, central_offset, 4); PutLe(&zip, 0, 2);
  std::ofstream out(npz_path, std::ios::binary | std::ios::trunc);
  out.write(zip.data(), static_cast<std::streamsize>(zip.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("special tokens: cannot write '", npz_path, "'"));
  return absl::OkStatus();
}

}  // namespace magi
