// The video object and list page of the OpenAI-compatible Videos API, made from magi.v1.Job:
//
//   {"id", "object": "video", "model", "status": queued|in_progress|completed|failed,
//    "progress": 0-100, "created_at", "completed_at", "expires_at", "seconds", "size",
//    "prompt", "remixed_from_video_id", "error": {"code", "message"} | null}
//
// A cancelled job reads as failed with error code "cancelled"; progress counts finished
// chunks. The id is the job id, the same one the gRPC API uses.
//
// Thread safety: pure functions.
#ifndef MAGI_API_VIDEO_OBJECT_H_
#define MAGI_API_VIDEO_OBJECT_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "magi/v1/video_generation.pb.h"
#include "nlohmann/json.hpp"

namespace magi {

// "queued" | "in_progress" | "completed" | "failed".
const char* VideoStatus(::magi::v1::JobState state);
// 0-100: finished chunks over all chunks (100 once completed).
int VideoProgress(const ::magi::v1::Job& job);
// The clip length as the API spells it: "4", or "3.5" when frames/fps is not whole.
std::string VideoSecondsText(int frames, int fps);

nlohmann::json VideoObject(const ::magi::v1::Job& job);
nlohmann::json VideoDeletedObject(const std::string& id);

// GET /v1/videos query: after (a video id), limit (1..100, default 20), order (asc|desc,
// default desc: newest first).
struct VideoListQuery {
  std::string after;
  int limit = 20;
  bool ascending = false;
};
inline constexpr int kMaxVideoListLimit = 100;

// InvalidArgument naming the parameter and its allowed values; unknown parameters too.
absl::StatusOr<VideoListQuery> ParseVideoListQuery(const std::map<std::string, std::string>& query);

// The page {"object": "list", "data", "first_id", "last_id", "has_more"} of `jobs` (all
// jobs, newest first) under `query`. InvalidArgument naming `after` if it is not among them.
absl::StatusOr<nlohmann::json> VideoListPage(const std::vector<::magi::v1::Job>& newest_first,
                                             const VideoListQuery& query);

}  // namespace magi

#endif  // MAGI_API_VIDEO_OBJECT_H_
