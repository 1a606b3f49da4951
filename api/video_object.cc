#include "api/video_object.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace magi {

using json = nlohmann::json;
using ::magi::v1::Job;

const char* VideoStatus(::magi::v1::JobState state) {
  switch (state) {
    case ::magi::v1::JOB_STATE_RUNNING:
      return "in_progress";
    case ::magi::v1::JOB_STATE_SUCCEEDED:
      return "completed";
    case ::magi::v1::JOB_STATE_FAILED:
    case ::magi::v1::JOB_STATE_CANCELLED:
      return "failed";
    default:
      return "queued";
  }
}

int VideoProgress(const Job& job) {
  if (job.state() == ::magi::v1::JOB_STATE_SUCCEEDED) return 100;
  if (job.chunks_total() <= 0) return 0;
  return std::clamp(job.chunks_done() * 100 / job.chunks_total(), 0, 100);
}

std::string VideoSecondsText(int frames, int fps) {
  if (fps <= 0) return "0";
  if (frames % fps == 0) return absl::StrCat(frames / fps);
  return absl::StrFormat("%g", static_cast<double>(frames) / fps);
}

json VideoObject(const Job& job) {
  const auto& r = job.request();
  json v = {{"id", job.job_id()},
            {"object", "video"},
            {"model", r.model()},
            {"status", VideoStatus(job.state())},
            {"progress", VideoProgress(job)},
            {"created_at", job.created_unix_ms() / 1000},
            {"seconds", VideoSecondsText(r.num_frames(), r.fps())},
            {"size", absl::StrCat(r.width(), "x", r.height())}};
  v["completed_at"] = job.state() == ::magi::v1::JOB_STATE_SUCCEEDED ? json(job.finished_unix_ms() / 1000) : json(nullptr);
  v["expires_at"] = nullptr;  // kept until retention (--retention_jobs/--retention_hours) removes it
  v["prompt"] = r.prompts_size() > 0 ? json(r.prompts(0).text()) : json(nullptr);
  v["remixed_from_video_id"] = nullptr;
  if (job.state() == ::magi::v1::JOB_STATE_FAILED) {
    v["error"] = {{"code", job.error_code() == 4 ? "deadline_exceeded" : "generation_failed"},
                  {"message", job.error_message()}};
  } else if (job.state() == ::magi::v1::JOB_STATE_CANCELLED) {
    v["error"] = {{"code", "cancelled"}, {"message", job.error_message()}};
  } else {
    v["error"] = nullptr;
  }
  // Extensions: what the job is, beyond OpenAI's fields.
  v["fps"] = r.fps();
  v["seed"] = r.seed();
  v["steps"] = r.num_steps();
  v["priority"] = r.priority();
  v["chunks_done"] = job.chunks_done();
  v["chunks_total"] = job.chunks_total();
  // Every prompt and the chunk it starts at (chunk_prompts of a create, live updates included).
  json prompts = json::array();
  for (const auto& p : r.prompts()) prompts.push_back({{"from_chunk", p.from_chunk()}, {"text", p.text()}});
  v["chunk_prompts"] = std::move(prompts);
  return v;
}

json VideoDeletedObject(const std::string& id) {
  return {{"id", id}, {"object", "video.deleted"}, {"deleted", true}};
}

absl::StatusOr<VideoListQuery> ParseVideoListQuery(const std::map<std::string, std::string>& query) {
  VideoListQuery q;
  for (const auto& [k, v] : query) {
    if (k == "after") {
      q.after = v;
    } else if (k == "limit") {
      if (!absl::SimpleAtoi(v, &q.limit) || q.limit < 1 || q.limit > kMaxVideoListLimit) {
        return absl::InvalidArgumentError(
            absl::StrCat("limit: '", v.substr(0, 32), "' is out of range; allowed 1 to ", kMaxVideoListLimit));
      }
    } else if (k == "order") {
      if (v != "asc" && v != "desc") {
        return absl::InvalidArgumentError(absl::StrCat("order: '", v.substr(0, 32), "' is not allowed; allowed asc, desc"));
      }
      q.ascending = v == "asc";
    } else {
      return absl::InvalidArgumentError(absl::StrCat(k.substr(0, 64), ": unknown parameter; allowed after, limit, order"));
    }
  }
  return q;
}

absl::StatusOr<json> VideoListPage(const std::vector<Job>& newest_first, const VideoListQuery& query) {
  std::vector<const Job*> ordered;
  ordered.reserve(newest_first.size());
  for (const Job& j : newest_first) ordered.push_back(&j);
  if (query.ascending) std::reverse(ordered.begin(), ordered.end());
  size_t begin = 0;
  if (!query.after.empty()) {
    auto it = std::find_if(ordered.begin(), ordered.end(), [&](const Job* j) { return j->job_id() == query.after; });
    if (it == ordered.end()) {
      return absl::InvalidArgumentError(absl::StrCat("after: no video '", query.after.substr(0, 64),
                                                     "' (the id of the last video of the previous page)"));
    }
    begin = static_cast<size_t>(it - ordered.begin()) + 1;
  }
  json data = json::array();
  size_t end = std::min(ordered.size(), begin + static_cast<size_t>(query.limit));
  for (size_t i = begin; i < end; ++i) data.push_back(VideoObject(*ordered[i]));
  json page = {{"object", "list"}, {"data", data}, {"has_more", end < ordered.size()}};
  page["first_id"] = data.empty() ? json(nullptr) : data.front()["id"];
  page["last_id"] = data.empty() ? json(nullptr) : data.back()["id"];
  return page;
}

}  // namespace magi
