// The inner loop of the fused CPU range attention (kernels/flash_attention_cpu.h): one block of
// query rows of one head against one key range of one K/V group, in float32, with an online
// softmax over key blocks (flash-attention style). Internal to kernels/.
//
// One algorithm, three builds: flash_attention_{avx512,avx2,scalar}.cc compile
// flash_attention_kernel_impl.h with their own instruction-set flags, and the caller picks one
// at run time. They are bitwise identical by construction, whatever the host:
//   - every vector operation is lane-wise on a logical 16-float vector (one zmm, two ymm, or 16
//     scalars), and every reduction runs in a fixed order that does not depend on the width:
//     a score is an FMA chain over the head dimension in index order (vectorised along keys), an
//     output element an FMA chain over the keys of a block in order (vectorised along channels),
//     a row sum adds into 16 lanes by key position mod 16 and then folds them in a fixed tree;
//   - exp is one polynomial written with explicit FMAs;
//   - the key blocks (kKeyBlock, aligned at absolute key positions) are the same for all builds;
//   - the TUs are compiled with -ffp-contract=off, so the compiler fuses nothing on its own.
// These TUs include no ATen and no standard-library templates: an inline function compiled with
// AVX-512 flags could otherwise be picked by the linker for the whole program.
#ifndef MAGI_KERNELS_FLASH_ATTENTION_KERNEL_H_
#define MAGI_KERNELS_FLASH_ATTENTION_KERNEL_H_

#include <cstdint>

namespace magi {
namespace flash {

// Floats per logical vector, for every build. Keys are packed in panels of this many.
constexpr int64_t kLanes = 16;
// Keys per online-softmax step. Part of the numerics (where the running max is rescaled): the
// same for every build. Blocks are aligned at absolute key positions that are multiples of it.
constexpr int64_t kKeyBlock = 128;
// Query rows of the register tiles are padded to a multiple of this (the largest tile height of
// any build); callers size q, o and s buffers with PaddedRows().
constexpr int64_t kRowPad = 6;
// Extra zero panels after the last key panel: a score tile may read up to 4 panels past the
// range (its columns are masked).
constexpr int64_t kPanelPad = 4;

inline int64_t PaddedRows(int64_t rows) { return (rows + kRowPad - 1) / kRowPad * kRowPad; }

struct AttendArgs {
  // Queries, float32, already multiplied by the softmax scale: [PaddedRows(rows)][d] (padding
  // rows are computed and ignored).
  const float* q = nullptr;
  int64_t rows = 0, d = 0, dv = 0;  // dv must be a multiple of kLanes
  // Keys of one group, transposed in panels: keys [16p, 16p + 16) form panel p, stored at
  // k_panels + p * d * 16 as [d][16]. Panels up to the one holding key k1 - 1, plus kPanelPad
  // more, must be readable.
  const float* k_panels = nullptr;
  // Values of one group, [keys][dv] contiguous.
  const float* v = nullptr;
  int64_t k0 = 0, k1 = 0;  // the key range [k0, k1), absolute positions; k1 > k0
  // Scratch, each PaddedRows(rows) long (s: times kKeyBlock + kLanes * kPanelPad floats).
  float* s = nullptr;
  float* m = nullptr;
  float* l = nullptr;
  float* alpha = nullptr;
  // Output: [PaddedRows(rows)][dv], softmax(q k^T) v per row.
  float* o = nullptr;
};

void AttendAvx512(const AttendArgs& a);
void AttendAvx2(const AttendArgs& a);
void AttendScalar(const AttendArgs& a);

}  // namespace flash
}  // namespace magi

#endif  // MAGI_KERNELS_FLASH_ATTENTION_KERNEL_H_
