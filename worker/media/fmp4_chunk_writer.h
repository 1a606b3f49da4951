// Fmp4ChunkWriter: the one place where a job's frames become its streamed fMP4 pieces, used
// by the worker's JobExecutor and by `magi generate --model_dir`, so a local run and a served
// run of the same request produce the same bytes.
//
// A job's video is init segment + one fragment per job chunk (+ the mfra tail Finish() gives).
// Resume: an attempt that starts at chunk k replays chunks < k through ReplayChunk(), which
// encodes and drops them, so the fragments from k on continue the first attempt's timeline
// and sequence numbers exactly (bytes equal an undisturbed run's with options.threads = 1).
//
// Usage: Create -> (ReplayChunk*) -> WriteChunk* -> Finish; chunks in order. Not thread-safe;
// not copyable; owns its encoder.
#ifndef MAGI_WORKER_MEDIA_FMP4_CHUNK_WRITER_H_
#define MAGI_WORKER_MEDIA_FMP4_CHUNK_WRITER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/media/rgb_frame.h"
#include "worker/media/video_encode_options.h"

namespace magi {

class FragmentedMp4Encoder;

// One job chunk's piece of the video.
struct Fmp4Piece {
  int index = 0;             // job chunk
  std::string init_segment;  // ftyp + moov: set on chunk 0 only
  std::string fragment;      // moof + mdat holding exactly the chunk's frames
  int frames = 0;
};

class Fmp4ChunkWriter {
 public:
  // width, height: the job's frame size (even, [2, 8192]); options are validated.
  static absl::StatusOr<std::unique_ptr<Fmp4ChunkWriter>> Create(int width, int height,
                                                                 const VideoEncodeOptions& options);
  ~Fmp4ChunkWriter();
  Fmp4ChunkWriter(const Fmp4ChunkWriter&) = delete;
  Fmp4ChunkWriter& operator=(const Fmp4ChunkWriter&) = delete;

  // Encodes chunk `index` (the next one) made by an earlier attempt and drops its fragment.
  absl::Status ReplayChunk(int index, const std::vector<RgbFrame>& frames);
  // Encodes chunk `index` (the next one; at least one frame) into its piece.
  absl::StatusOr<Fmp4Piece> WriteChunk(int index, const std::vector<RgbFrame>& frames);
  // Ends the video; returns the trailing bytes (mfra). Call once.
  absl::StatusOr<std::string> Finish();

  const std::string& init_segment() const { return init_segment_; }

 private:
  Fmp4ChunkWriter() = default;
  absl::Status CheckOrder(int index) const;

  std::unique_ptr<FragmentedMp4Encoder> encoder_;
  std::string init_segment_;
  int next_index_ = 0;
};

}  // namespace magi

#endif  // MAGI_WORKER_MEDIA_FMP4_CHUNK_WRITER_H_
