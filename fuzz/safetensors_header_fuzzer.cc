// libFuzzer target for the safetensors header parser (ParseSafetensorsHeader, what every
// checkpoint and golden file goes through before a tensor is exposed): any byte string, taken
// as a whole file, must give a header or an error naming the file, never a crash, a
// sanitizer report or a hang. An accepted header must keep the promises SafetensorsFile
// relies on to alias the mapping: every tensor inside the data section, its byte span equal
// to dtype size x shape, non-empty tensors pairwise disjoint, names sorted and unique.
// Seeds: scripts/fuzz.sh writes a few valid files (fuzz/make_safetensors_seeds.py).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "worker/model/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = "fuzz.safetensors";
  auto header = magi::ParseSafetensorsHeader(data, size, path);
  if (!header.ok()) {
    if (header.status().message().find(path) == std::string::npos) std::abort();  // names the file
    return 0;
  }
  if (header->data_start < 8 || header->data_start > size) std::abort();
  const uint64_t data_size = size - header->data_start;
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (size_t i = 0; i < header->tensors.size(); ++i) {
    const magi::StTensorInfo& t = header->tensors[i];
    if (i > 0 && !(header->tensors[i - 1].name < t.name)) std::abort();
    if (t.begin > t.end || t.end > data_size) std::abort();
    unsigned __int128 bytes = magi::StDtypeSize(t.dtype);
    for (int64_t d : t.shape) {
      if (d < 0) std::abort();
      bytes *= static_cast<uint64_t>(d);
    }
    if (bytes != t.end - t.begin) std::abort();
    if (t.end > t.begin) spans.emplace_back(t.begin, t.end);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    if (spans[i].first < spans[i - 1].second) std::abort();
  }
  return 0;
}
