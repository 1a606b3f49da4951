// VideoThumbnail: a JPEG of a video file's first frame, for the API's
// GET /v1/videos/{id}/content?variant=thumbnail.
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

}  // namespace magi

#endif  // MAGI_WORKER_MEDIA_VIDEO_THUMBNAIL_H_
