// Shared pieces of the magi-golden checker: the case report, tensor comparison against a
// reference that marks never-written entries with NaN, and the golden folder context.
#ifndef MAGI_TOOLS_GOLDEN_GOLDEN_REPORT_H_
#define MAGI_TOOLS_GOLDEN_GOLDEN_REPORT_H_

#include <cstdio>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "parallel/layout.h"
#include "worker/engine/stage_plan.h"

namespace magi {

class Communicator;

struct GoldenContext {
  std::string dir;   // the golden folder (golden.json, weights.safetensors, ...)
  int tp = 1;        // tensor-parallel degree to run with
  int cp = 1;        // context-parallel degree to run with
  bool verbose = false;
  // Where the DiT and the VAE of the cases run (--device); inputs follow the model and the
  // outputs are compared on the CPU in float64. T5 cases always run on the CPU.
  c10::Device device = c10::Device(c10::kCPU);
  // Order the 'ar' cases run the engine in (--schedule). The reference order is checked call
  // by call (replay and per-forward outputs); stream-first runs other forwards (the lead chunk
  // alone first), so only what both orders produce is compared: every emitted chunk,
  // final_latents and the final KV cache.
  Schedule schedule = Schedule::kReference;
  // --elide_self_only_copy (EngineOptions::elide_self_only_copy, as the served path runs):
  // some forwards then carry one chunk fewer than the reference's, so, as for stream-first,
  // only the emitted chunks, final_latents and the final KV cache are compared.
  bool elide_self_only_copy = false;
  // This process's place in a launched group (single rank by default); models loaded for
  // the cases are sharded accordingly.
  ShardLayout layout;
  Communicator* tp_comm = nullptr;
  Communicator* cp_comm = nullptr;
};

struct GoldenComparison {
  double max_diff = 0;  // max |ours - ref| over entries where ref is not NaN
  double max_ref = 0;   // max |ref| over the same entries
  int64_t compared = 0;
  std::string error;    // shape mismatch, NaN in ours where ref is finite, ...
  double ratio() const { return max_ref > 0 ? max_diff / max_ref : max_diff; }
};

// Compares in float64 on CPU. NaN entries of `ref` are skipped (never written by the
// reference); a NaN or inf in `ours` where `ref` is finite is an error, and so is a reference
// with nothing to compare (empty or all NaN).
GoldenComparison CompareToReference(const at::Tensor& ours, const at::Tensor& ref);

// Collects one line per case: "PASS name max|diff|=... max|ref|=... ratio=..." and counts.
class GoldenReport {
 public:
  explicit GoldenReport(FILE* out = stdout) : out_(out) {}
  // Records a compared case: passes when ratio <= rel_tol and no error.
  bool Check(const std::string& name, const GoldenComparison& c, double rel_tol);
  // Compares and records in one go.
  bool CheckTensor(const std::string& name, const at::Tensor& ours, const at::Tensor& ref, double rel_tol);
  // An exact (non-numeric) check: strings, ids.
  bool CheckExact(const std::string& name, bool equal, const std::string& detail = "");
  void Fail(const std::string& name, const std::string& why);
  void Skip(const std::string& name, const std::string& why);
  int passed() const { return passed_; }
  int failed() const { return failed_; }
  int skipped() const { return skipped_; }
  // "N passed, M failed, K skipped"
  std::string Summary() const;

 private:
  FILE* out_;
  int passed_ = 0, failed_ = 0, skipped_ = 0;
};

// Case kinds; each is implemented in its own file and reports every case of its kind found
// in the folder (skipped with a reason when the feature is not built).
void RunForwardCases(const GoldenContext& ctx, GoldenReport& report);
void RunArCases(const GoldenContext& ctx, GoldenReport& report);
void RunVaeCases(const GoldenContext& ctx, GoldenReport& report);
void RunT5Cases(const GoldenContext& ctx, GoldenReport& report);

// Files of `dir` whose name starts with `prefix` and ends with `suffix`, sorted.
std::vector<std::string> GoldenFiles(const std::string& dir, const std::string& prefix, const std::string& suffix);

}  // namespace magi

#endif  // MAGI_TOOLS_GOLDEN_GOLDEN_REPORT_H_
