// The realtime video stream's messages (GET /v1/realtime/video, a WebSocket), as data: the
// client's JSON control messages parsed, and the server's JSON messages built. No sockets;
// server/realtime_video_session.cc speaks it. The shape follows vLLM-Omni's realtime video
// stream: a session start carrying the create fields, then per chunk a JSON metadata message
// followed by one binary message (the fMP4 init segment once, first; then one fragment per
// chunk), and one final "done" or "error" message.
//
// Client -> server (text messages, JSON objects with a "type"):
//   {"type": "session.start", <the fields of POST /v1/videos: prompt, model, seconds, size,
//    input_reference (base64 or data URL), chunk_prompts, seed, steps, priority, fps>}
//   {"type": "session.resume", "video_id": "...", "from_chunk": k}   reconnect: chunks >= k
//   {"type": "prompt.update", "prompt": "..."}     the session's video uses the prompt from its
//                                                 next chunk that has not started denoising
//   {"type": "session.stop"}                         cancels the session's video
// Server -> client:
//   {"type": "session.started", "video": <video object>}
//   {"type": "progress", "chunk", "chunks_done", "chunks_total", "step", "total_steps",
//    "eta_seconds", "status", "queue_position"}
//   {"type": "init_segment", "bytes": n}         then a binary message of n bytes (ftyp+moov)
//   {"type": "chunk", "index", "frame_begin", "frame_end", "chunks_total", "bytes": n}
//                                                 then a binary message of n bytes (moof+mdat)
//   {"type": "prompt.updated", "from_chunk": k, "prompt": "..."}   the answer to prompt.update:
//                                                 chunks >= k are made with it
//   {"type": "done", "video": <video object>}     the last message of a completed video
//   {"type": "error", "error": {"message", "type", "param", "code"}, "fatal": bool}
//
// Thread safety: pure functions over values.
#ifndef MAGI_API_REALTIME_PROTOCOL_H_
#define MAGI_API_REALTIME_PROTOCOL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "api/api_error.h"
#include "api/video_request.h"
#include "magi/v1/video_generation.pb.h"
#include "nlohmann/json.hpp"

namespace magi {

struct RealtimeClientMessage {
  enum class Type { kStart, kResume, kPromptUpdate, kStop };
  Type type = Type::kStart;
  VideoCreateParams create;  // kStart
  std::string video_id;      // kResume
  int from_chunk = 0;        // kResume
  std::string prompt;        // kPromptUpdate
};

// Parses one text message. InvalidArgument naming the field ("type", "video_id", or the
// create field) when it is not JSON, not an object, of an unknown type, or its fields are
// wrong (the create fields are judged exactly as POST /v1/videos judges them).
absl::StatusOr<RealtimeClientMessage> ParseRealtimeClientMessage(absl::string_view text);

// The JSON metadata message for a job event, or null for an event the stream does not
// forward (accepted). A chunk event's binary payloads are sent by the caller after it:
// the init segment (if set) after an "init_segment" message, then the fragment after
// the "chunk" message -- RealtimeChunkMessages returns both in order.
nlohmann::json RealtimeProgressMessage(const ::magi::v1::JobProgress& progress);
nlohmann::json RealtimeInitSegmentMessage(size_t bytes);
nlohmann::json RealtimePromptUpdatedMessage(int from_chunk, const std::string& prompt);
nlohmann::json RealtimeChunkMessage(const ::magi::v1::VideoChunk& chunk);
// {"type": "error", "error": <OpenAI error object>, "fatal": fatal}.
nlohmann::json RealtimeErrorMessage(const ApiError& error, bool fatal);

}  // namespace magi

#endif  // MAGI_API_REALTIME_PROTOCOL_H_
