// Small helpers shared by the benchmarks: wall time, peak resident memory.
#ifndef MAGI_BENCH_BENCH_UTIL_H_
#define MAGI_BENCH_BENCH_UTIL_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

namespace magi {

inline double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A field of /proc/self/status in kB ("VmRSS", "VmHWM"), or -1.
inline int64_t ProcStatusKb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  }
  return -1;
}

// Resets the peak RSS counter (VmHWM) to the current RSS (Linux >= 4.0).
inline void ResetPeakRss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
}

}  // namespace magi

#endif  // MAGI_BENCH_BENCH_UTIL_H_
