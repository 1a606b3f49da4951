#include "tools/golden/golden_report.h"

#include <algorithm>
#include <filesystem>

#include <ATen/ATen.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace magi {

GoldenComparison CompareToReference(const at::Tensor& ours, const at::Tensor& ref) {
  GoldenComparison c;
  if (ours.sizes() != ref.sizes()) {
    c.error = absl::StrCat("shape [", absl::StrJoin(ours.sizes(), ","), "] vs reference [",
                           absl::StrJoin(ref.sizes(), ","), "]");
    c.max_diff = INFINITY;
    return c;
  }
  at::Tensor a = ours.detach().to(at::kCPU).to(at::kDouble);
  at::Tensor b = ref.detach().to(at::kCPU).to(at::kDouble);
  at::Tensor valid = ~at::isnan(b);
  c.compared = valid.sum().item<int64_t>();
  if (c.compared == 0) {
    // Nothing to compare is a failure, never a pass: an all-NaN or empty reference checks nothing.
    c.error = b.numel() == 0 ? "the reference tensor is empty" : "the reference has no value that is not NaN";
    c.max_diff = INFINITY;
    return c;
  }
  at::Tensor av = a.masked_select(valid), bv = b.masked_select(valid);
  if (!at::isfinite(av).all().item<bool>()) {
    c.error = "non-finite values where the reference is finite";
    c.max_diff = INFINITY;
  } else {
    c.max_diff = (av - bv).abs().max().item<double>();
  }
  c.max_ref = bv.abs().max().item<double>();
  return c;
}

bool GoldenReport::Check(const std::string& name, const GoldenComparison& c, double rel_tol) {
  bool ok = c.error.empty() && c.ratio() <= rel_tol;
  std::string line = absl::StrFormat("%s %s max|diff|=%.3g max|ref|=%.3g ratio=%.3g (tol %.0e)", ok ? "PASS" : "FAIL",
                                     name, c.max_diff, c.max_ref, c.ratio(), rel_tol);
  if (!c.error.empty()) absl::StrAppend(&line, " error: ", c.error);
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
  ok ? ++passed_ : ++failed_;
  return ok;
}

bool GoldenReport::CheckTensor(const std::string& name, const at::Tensor& ours, const at::Tensor& ref,
                               double rel_tol) {
  return Check(name, CompareToReference(ours, ref), rel_tol);
}

bool GoldenReport::CheckExact(const std::string& name, bool equal, const std::string& detail) {
  std::fprintf(out_, "%s %s exact%s%s\n", equal ? "PASS" : "FAIL", name.c_str(), detail.empty() ? "" : ": ",
               detail.c_str());
  std::fflush(out_);
  equal ? ++passed_ : ++failed_;
  return equal;
}

void GoldenReport::Fail(const std::string& name, const std::string& why) {
  std::fprintf(out_, "FAIL %s error: %s\n", name.c_str(), why.c_str());
  std::fflush(out_);
  ++failed_;
}

void GoldenReport::Skip(const std::string& name, const std::string& why) {
  std::fprintf(out_, "SKIP %s (%s)\n", name.c_str(), why.c_str());
  std::fflush(out_);
  ++skipped_;
}

std::string GoldenReport::Summary() const {
  return absl::StrCat(passed_, " passed, ", failed_, " failed, ", skipped_, " skipped");
}

std::vector<std::string> GoldenFiles(const std::string& dir, const std::string& prefix, const std::string& suffix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (absl::StartsWith(name, prefix) && absl::EndsWith(name, suffix)) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace magi
