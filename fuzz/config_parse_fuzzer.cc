// libFuzzer target for the model folder's config.json parser (ParseMagiConfig): any byte
// string must give a config or an error status, never a crash, a sanitizer report or a hang;
// and an accepted config must round-trip: writing it and parsing that again succeeds and
// writes the same text (the writer and the strict parser agree on every field).
// Seeds: configs/*.json (scripts/fuzz.sh copies them).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "worker/model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = magi::ParseMagiConfig(text, "fuzz.json");
  if (!config.ok()) {
    if (config.status().message().empty()) std::abort();  // every refusal says why
    return 0;
  }
  const std::string written = magi::MagiConfigToJson(*config);
  auto again = magi::ParseMagiConfig(written, "fuzz-roundtrip.json");
  if (!again.ok()) std::abort();
  if (magi::MagiConfigToJson(*again) != written) std::abort();
  return 0;
}
