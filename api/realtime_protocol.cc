#include "api/realtime_protocol.h"

#include "absl/strings/str_cat.h"
#include "api/video_object.h"
#include "base/status_macros.h"

namespace magi {
namespace {

using json = nlohmann::json;

absl::Status Bad(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

}  // namespace

absl::StatusOr<RealtimeClientMessage> ParseRealtimeClientMessage(absl::string_view text) {
  json msg = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (msg.is_discarded()) return Bad("message", "not valid JSON");
  if (!msg.is_object()) return Bad("message", "must be a JSON object with a \"type\"");
  auto type_it = msg.find("type");
  if (type_it == msg.end() || !type_it->is_string()) {
    return Bad("type", "missing; allowed session.start, session.resume, prompt.update, session.stop");
  }
  const std::string type = type_it->get<std::string>();
  msg.erase("type");
  RealtimeClientMessage out;
  if (type == "session.start") {
    out.type = RealtimeClientMessage::Type::kStart;
    MAGI_ASSIGN_OR_RETURN(auto params, ParseVideoCreate("application/json", msg.dump()));
    out.create = std::move(params);
    return out;
  }
  if (type == "session.resume") {
    out.type = RealtimeClientMessage::Type::kResume;
    for (const auto& [k, v] : msg.items()) {
      if (k == "video_id") {
        if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>().size() > 128) {
          return Bad("video_id", "must be a video id (a non-empty string of at most 128 characters)");
        }
        out.video_id = v.get<std::string>();
      } else if (k == "from_chunk") {
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 1000000) {
          return Bad("from_chunk", "must be an integer in [0, 1000000]");
        }
        out.from_chunk = static_cast<int>(v.get<int64_t>());
      } else {
        return Bad(k.substr(0, 64), "unknown field; allowed video_id, from_chunk");
      }
    }
    if (out.video_id.empty()) return Bad("video_id", "required by session.resume");
    return out;
  }
  if (type == "prompt.update") {
    out.type = RealtimeClientMessage::Type::kPromptUpdate;
    for (const auto& [k, v] : msg.items()) {
      if (k != "prompt") return Bad(k.substr(0, 64), "unknown field; allowed prompt");
      if (!v.is_string() || v.get<std::string>().empty()) return Bad("prompt", "must be a non-empty string");
      out.prompt = v.get<std::string>();
    }
    if (out.prompt.empty()) return Bad("prompt", "required by prompt.update");
    return out;
  }
  if (type == "session.stop") {
    out.type = RealtimeClientMessage::Type::kStop;
    return out;
  }
  return Bad("type", absl::StrCat("'", type.substr(0, 64),
                                  "' is unknown; allowed session.start, session.resume, prompt.update, session.stop"));
}

json RealtimePromptUpdatedMessage(int from_chunk, const std::string& prompt) {
  return json{{"type", "prompt.updated"}, {"from_chunk", from_chunk}, {"prompt", prompt}};
}

json RealtimeProgressMessage(const ::magi::v1::JobProgress& p) {
  return json{{"type", "progress"},
              {"chunk", p.chunk()},
              {"chunks_done", p.chunks_done()},
              {"chunks_total", p.chunks_total()},
              {"step", p.step()},
              {"total_steps", p.total_steps()},
              {"eta_seconds", p.eta_seconds()},
              {"status", VideoStatus(p.state())},
              {"queue_position", p.queue_position()}};
}

json RealtimeInitSegmentMessage(size_t bytes) { return json{{"type", "init_segment"}, {"bytes", bytes}}; }

json RealtimeChunkMessage(const ::magi::v1::VideoChunk& c) {
  return json{{"type", "chunk"},
              {"index", c.index()},
              {"frame_begin", c.frame_begin()},
              {"frame_end", c.frame_end()},
              {"chunks_total", c.chunks_total()},
              {"bytes", c.fragment().size()}};
}

json RealtimeErrorMessage(const ApiError& e, bool fatal) {
  json err = json::parse(ApiErrorJson(e), nullptr, false);
  json out{{"type", "error"}, {"fatal", fatal}};
  out["error"] = err.is_object() && err.contains("error") ? err["error"] : json{{"message", e.message}};
  return out;
}

}  // namespace magi
