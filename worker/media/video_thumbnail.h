// VideoThumbnail: a JPEG of a video file's first frame, and a spritesheet (a grid of evenly
// spaced frames), for the API's GET /v1/videos/{id}/content?variant=thumbnail|spritesheet.
//
// Decodes only until the first picture of the first video stream (any container / codec
// FFmpeg reads; our videos are H.264 MP4), converts it to full-range YUV 4:2:0 and encodes it
// with FFmpeg's mjpeg encoder at the video's own size. Torch-free, no temporary files.
//
// Thread safety: reentrant; concurrent calls share nothing.
#ifndef MAGI_WORKER_MEDIA_VIDEO_THUMBNAIL_H_
#define MAGI_WORKER_MEDIA_VIDEO_THUMBNAIL_H_

#include <string>

#include "absl/status/statusor.h"

namespace magi {

// The JPEG bytes of the first frame of the video at `path`. NotFound when the file cannot
// be opened; InvalidArgument (naming the path) when it holds no decodable video frame;
// Internal when FFmpeg's mjpeg encoder is missing or fails. `quality` is the JPEG qscale,
// 2 (best) .. 31.
absl::StatusOr<std::string> VideoThumbnailJpeg(const std::string& path, int quality = 3);

struct SpritesheetOptions {
  int max_tiles = 16;        // frames shown: min(frames, max_tiles), 1..256
  int columns = 4;           // tiles per row (fewer when there are fewer tiles), 1..64
  int max_tile_width = 256;  // a tile is the video scaled down to at most this width, 16..4096
  int quality = 3;           // JPEG qscale, 2 (best) .. 31
};

// One JPEG holding a grid of tiles, row-major: tile k is frame floor(k * frames / tiles),
// scaled to the tile size (the video's aspect, even sizes); empty cells of the last row are
// black. Errors as VideoThumbnailJpeg; options out of range are InvalidArgument.
absl::StatusOr<std::string> VideoSpritesheetJpeg(const std::string& path, const SpritesheetOptions& options = {});

}  // namespace magi

#endif  // MAGI_WORKER_MEDIA_VIDEO_THUMBNAIL_H_
