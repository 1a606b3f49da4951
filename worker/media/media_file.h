// ReadMediaFile: reads an input image or video from disk for the decoders, refusing files
// larger than MediaLimits::max_input_bytes before reading them (the decoders take whole
// inputs in memory, as the reference does with the image bytes).
//
// Reentrant.
#ifndef MAGI_WORKER_MEDIA_MEDIA_FILE_H_
#define MAGI_WORKER_MEDIA_MEDIA_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "worker/media/media_limits.h"

namespace magi {

// The file's bytes; NotFound / PermissionDenied / InvalidArgument (not a regular file, too
// large) / DataLoss (short read), each naming the path.
absl::StatusOr<std::string> ReadMediaFile(const std::string& path,
                                          const MediaLimits& limits = {});

}  // namespace magi

#endif  // MAGI_WORKER_MEDIA_MEDIA_FILE_H_
