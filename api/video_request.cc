#include "api/video_request.h"

#include <cmath>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "api/multipart.h"
#include "base/status_macros.h"
#include "nlohmann/json.hpp"

namespace magi {
namespace {

using ::magi::v1::ChunkPrompt;
using ::magi::v1::GenerateRequest;
using json = nlohmann::json;

absl::Status Bad(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

// A value echoed in a message: at most 64 bytes.
std::string Echo(absl::string_view v) {
  return v.size() <= 64 ? std::string(v) : absl::StrCat(v.substr(0, 61), "...");
}

enum class Form { kMultipart, kJson };

absl::StatusOr<Form> FormOf(absl::string_view content_type) {
  absl::string_view media = absl::StripAsciiWhitespace(content_type.substr(0, content_type.find(';')));
  if (absl::EqualsIgnoreCase(media, "multipart/form-data")) return Form::kMultipart;
  if (absl::EqualsIgnoreCase(media, "application/json")) return Form::kJson;
  return absl::InvalidArgumentError(absl::StrCat(
      "Content-Type: '", Echo(content_type), "' is not supported; allowed multipart/form-data or application/json"));
}

absl::StatusOr<int64_t> IntFromText(absl::string_view field, absl::string_view text) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &v)) {
    return Bad(field, absl::StrCat("'", Echo(text), "' is not an integer"));
  }
  return v;
}

absl::StatusOr<int> Int32FromText(absl::string_view field, absl::string_view text) {
  MAGI_ASSIGN_OR_RETURN(auto v, IntFromText(field, text));
  if (v < INT32_MIN || v > INT32_MAX) return Bad(field, absl::StrCat(v, " does not fit a 32-bit integer"));
  return static_cast<int>(v);
}

absl::StatusOr<int64_t> IntFromJson(absl::string_view field, const json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return Bad(field, "does not fit a 64-bit integer");
    return static_cast<int64_t>(u);
  }
  if (v.is_string()) return IntFromText(field, v.get<std::string>());
  return Bad(field, absl::StrCat("must be an integer, got ", v.type_name()));
}

absl::StatusOr<int> Int32FromJson(absl::string_view field, const json& v) {
  MAGI_ASSIGN_OR_RETURN(auto i, IntFromJson(field, v));
  if (i < INT32_MIN || i > INT32_MAX) return Bad(field, absl::StrCat(i, " does not fit a 32-bit integer"));
  return static_cast<int>(i);
}

absl::Status SetSeconds(VideoCreateParams& p, absl::string_view text) {
  double s = 0;
  if (!absl::SimpleAtod(absl::StripAsciiWhitespace(text), &s) || !std::isfinite(s)) {
    return Bad("seconds", absl::StrCat("'", Echo(text), "' is not a number of seconds (e.g. \"4\")"));
  }
  if (s <= 0) return Bad("seconds", absl::StrCat("'", Echo(text), "' must be > 0"));
  p.seconds = s;
  p.seconds_text = std::string(absl::StripAsciiWhitespace(text));
  return absl::OkStatus();
}

absl::Status SetSize(VideoCreateParams& p, absl::string_view text) {
  std::vector<absl::string_view> wh = absl::StrSplit(absl::AsciiStrToLower(text), 'x');
  int w = 0, h = 0;
  if (wh.size() != 2 || !absl::SimpleAtoi(wh[0], &w) || !absl::SimpleAtoi(wh[1], &h) || w <= 0 || h <= 0) {
    return Bad("size", absl::StrCat("'", Echo(text), "' is not WIDTHxHEIGHT in pixels (e.g. \"256x256\")"));
  }
  p.width = w;
  p.height = h;
  p.size_text = std::string(text);
  return absl::OkStatus();
}

// input_reference as a data: URL ("data:image/png;base64,...").
absl::Status SetImageUrl(VideoCreateParams& p, absl::string_view field, absl::string_view url) {
  if (!absl::StartsWith(url, "data:")) {
    return Bad(field, "only data: URLs (data:image/...;base64,...) are accepted; upload the file as "
                      "multipart input_reference instead of a remote URL");
  }
  size_t comma = url.find(',');
  if (comma == absl::string_view::npos || !absl::EndsWith(url.substr(0, comma), ";base64")) {
    return Bad(field, "a data: URL must be base64 (data:image/png;base64,...)");
  }
  std::string bytes;
  if (!absl::Base64Unescape(url.substr(comma + 1), &bytes) || bytes.empty()) {
    return Bad(field, "the data: URL's base64 payload does not decode");
  }
  p.input_reference = std::move(bytes);
  return absl::OkStatus();
}

absl::Status AddChunkPrompt(VideoCreateParams& p, size_t index, const json& v) {
  const std::string field = absl::StrCat("chunk_prompts[", index, "]");
  ChunkPrompt cp;
  if (v.is_string()) {
    cp.set_from_chunk(static_cast<int>(index) + 1);
    cp.set_text(v.get<std::string>());
  } else if (v.is_object()) {
    for (const auto& [k, item] : v.items()) {
      if (k == "from_chunk") {
        MAGI_ASSIGN_OR_RETURN(auto c, Int32FromJson(absl::StrCat(field, ".from_chunk"), item));
        cp.set_from_chunk(c);
      } else if (k == "text") {
        if (!item.is_string()) return Bad(absl::StrCat(field, ".", k), "must be a string");
        cp.set_text(item.get<std::string>());
      } else {
        return Bad(field, absl::StrCat("unknown field '", Echo(k), "'; allowed from_chunk, text"));
      }
    }
    if (!v.contains("from_chunk")) return Bad(field, "needs from_chunk (the first chunk it applies to, >= 1)");
  } else {
    return Bad(field, absl::StrCat("must be a string (the prompt of chunk ", index + 1,
                                   ") or {\"from_chunk\": N, \"text\": \"...\"}, got ", v.type_name()));
  }
  p.chunk_prompts.push_back(std::move(cp));
  return absl::OkStatus();
}

absl::Status ChunkPromptsFromJson(VideoCreateParams& p, const json& v) {
  if (!v.is_array()) return Bad("chunk_prompts", absl::StrCat("must be an array, got ", v.type_name()));
  if (v.size() > 4096) return Bad("chunk_prompts", absl::StrCat(v.size(), " entries; at most 4096"));
  for (size_t i = 0; i < v.size(); ++i) {
    MAGI_RETURN_IF_ERROR(AddChunkPrompt(p, i, v[i]));
  }
  return absl::OkStatus();
}

absl::Status UnknownField(absl::string_view name, const std::vector<std::string>& allowed) {
  return Bad(name, absl::StrCat("unknown parameter; allowed: ", absl::StrJoin(allowed, ", ")));
}

absl::Status CheckPrompt(const VideoCreateParams& p, bool seen) {
  if (!seen) return Bad("prompt", "is required (the text that describes the video)");
  return absl::OkStatus();
}

// Which request a body is: a create (POST /v1/videos) or an extension
// (POST /v1/videos/extensions: `video` instead of input_reference).
enum class Kind { kCreate, kExtend };

absl::Status MissingVideo() {
  return Bad("video", "is required: video[id] (a completed video's id) or an uploaded MP4, MOV or WebM file");
}

absl::StatusOr<VideoCreateParams> CreateFromMultipart(absl::string_view content_type, absl::string_view body,
                                                      int max_parts, Kind kind, std::string* video_id) {
  MAGI_ASSIGN_OR_RETURN(auto parts, ParseMultipartFormData(content_type, body, max_parts));
  VideoCreateParams p;
  std::set<std::string> seen;
  std::vector<std::string> chunk_texts;
  bool chunk_json = false;
  const bool extend = kind == Kind::kExtend;
  const std::vector<std::string>& allowed = extend ? VideoExtendFields() : VideoCreateFields();
  const char* file_field = extend ? "video" : "input_reference";
  for (const MultipartPart& part : parts) {
    const std::string& n = part.name;
    const bool repeatable = n == "chunk_prompts[]";
    if (!repeatable && !seen.insert(n).second) return Bad(n, "given more than once");
    if (part.is_file && n != file_field) {
      return Bad(n, absl::StrCat("is a file upload; only ", file_field, " takes a file"));
    }
    if (extend && (n == "video" || n == "video[id]")) {
      if (seen.count("video") + seen.count("video[id]") > 1) return Bad("video", "give video[id] or a file, not both");
      if (n == "video[id]") {
        if (part.body.empty()) return Bad("video.id", "is empty");
        *video_id = part.body;
      } else if (!part.is_file) {
        return Bad("video", "must be an uploaded file (MP4, MOV or WebM) or given as video[id]");
      } else if (part.body.empty()) {
        return Bad("video", "the uploaded file is empty");
      } else {
        p.prefix_video = part.body;
      }
      continue;
    }
    if (extend && absl::StartsWith(n, "input_reference")) return UnknownField(n, allowed);
    if (n == "prompt") {
      p.prompt = part.body;
    } else if (n == "model") {
      p.model = part.body;
    } else if (n == "seconds") {
      MAGI_RETURN_IF_ERROR(SetSeconds(p, part.body));
    } else if (n == "size") {
      MAGI_RETURN_IF_ERROR(SetSize(p, part.body));
    } else if (n == "input_reference") {
      if (part.is_file) {
        if (part.body.empty()) return Bad("input_reference", "the uploaded file is empty");
        p.input_reference = part.body;
      } else {
        MAGI_RETURN_IF_ERROR(SetImageUrl(p, "input_reference", part.body));
      }
    } else if (n == "input_reference[image_url]") {
      MAGI_RETURN_IF_ERROR(SetImageUrl(p, "input_reference.image_url", part.body));
    } else if (n == "input_reference[file_id]") {
      return Bad("input_reference.file_id", "file ids are not supported; upload the image as input_reference");
    } else if (n == "chunk_prompts[]") {
      chunk_texts.push_back(part.body);
    } else if (n == "chunk_prompts") {
      json v = json::parse(part.body, nullptr, /*allow_exceptions=*/false);
      if (v.is_discarded()) return Bad("chunk_prompts", "is not a JSON array");
      MAGI_RETURN_IF_ERROR(ChunkPromptsFromJson(p, v));
      chunk_json = true;
    } else if (n == "seed") {
      MAGI_ASSIGN_OR_RETURN(auto v, IntFromText("seed", part.body));
      p.seed = v;
    } else if (n == "steps") {
      MAGI_ASSIGN_OR_RETURN(auto v, Int32FromText("steps", part.body));
      p.steps = v;
    } else if (n == "priority") {
      MAGI_ASSIGN_OR_RETURN(auto v, Int32FromText("priority", part.body));
      p.priority = v;
    } else if (n == "fps") {
      MAGI_ASSIGN_OR_RETURN(auto v, Int32FromText("fps", part.body));
      p.fps = v;
    } else {
      return UnknownField(n, allowed);
    }
  }
  if (extend && video_id->empty() && p.prefix_video.empty()) return MissingVideo();
  if (chunk_json && !chunk_texts.empty()) {
    return Bad("chunk_prompts", "give either chunk_prompts (a JSON array) or chunk_prompts[] fields, not both");
  }
  for (size_t i = 0; i < chunk_texts.size(); ++i) {
    MAGI_RETURN_IF_ERROR(AddChunkPrompt(p, i, json(chunk_texts[i])));
  }
  MAGI_RETURN_IF_ERROR(CheckPrompt(p, seen.count("prompt") > 0));
  return p;
}

absl::StatusOr<json> JsonObject(absl::string_view body) {
  json v = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) return absl::InvalidArgumentError("body: is not valid JSON");
  if (!v.is_object()) return absl::InvalidArgumentError(absl::StrCat("body: must be a JSON object, got ", v.type_name()));
  return v;
}

absl::Status NeedString(absl::string_view field, const json& v) {
  if (!v.is_string()) return Bad(field, absl::StrCat("must be a string, got ", v.type_name()));
  return absl::OkStatus();
}

absl::StatusOr<VideoCreateParams> CreateFromJson(absl::string_view body, Kind kind, std::string* video_id) {
  MAGI_ASSIGN_OR_RETURN(auto obj, JsonObject(body));
  VideoCreateParams p;
  const bool extend = kind == Kind::kExtend;
  const std::vector<std::string>& allowed = extend ? VideoExtendFields() : VideoCreateFields();
  for (const auto& [k, v] : obj.items()) {
    if (v.is_null()) continue;  // null = not given, as OpenAI treats optional fields
    if (extend && k == "video") {
      if (!v.is_object() || !v.contains("id") || !v["id"].is_string() || v.size() != 1) {
        return Bad("video", "must be {\"id\": \"<a completed video's id>\"} (upload a file with multipart/form-data)");
      }
      *video_id = v["id"].get<std::string>();
      if (video_id->empty()) return Bad("video.id", "is empty");
      continue;
    }
    if (extend && k == "input_reference") return UnknownField(k, allowed);
    if (k == "prompt") {
      MAGI_RETURN_IF_ERROR(NeedString(k, v));
      p.prompt = v.get<std::string>();
    } else if (k == "model") {
      MAGI_RETURN_IF_ERROR(NeedString(k, v));
      p.model = v.get<std::string>();
    } else if (k == "seconds") {
      if (!v.is_string() && !v.is_number()) return Bad(k, absl::StrCat("must be a string like \"4\", got ", v.type_name()));
      MAGI_RETURN_IF_ERROR(SetSeconds(p, v.is_string() ? v.get<std::string>() : v.dump()));
    } else if (k == "size") {
      MAGI_RETURN_IF_ERROR(NeedString(k, v));
      MAGI_RETURN_IF_ERROR(SetSize(p, v.get<std::string>()));
    } else if (k == "input_reference") {
      if (v.is_string()) {
        MAGI_RETURN_IF_ERROR(SetImageUrl(p, "input_reference", v.get<std::string>()));
      } else if (v.is_object()) {
        if (v.contains("file_id")) {
          return Bad("input_reference.file_id", "file ids are not supported; send image_url as a data: URL");
        }
        if (!v.contains("image_url") || !v["image_url"].is_string()) {
          return Bad("input_reference", "must be {\"image_url\": \"data:image/...;base64,...\"}");
        }
        MAGI_RETURN_IF_ERROR(SetImageUrl(p, "input_reference.image_url", v["image_url"].get<std::string>()));
      } else {
        return Bad(k, absl::StrCat("must be an object {\"image_url\": ...} or a data: URL, got ", v.type_name()));
      }
    } else if (k == "chunk_prompts") {
      MAGI_RETURN_IF_ERROR(ChunkPromptsFromJson(p, v));
    } else if (k == "seed") {
      MAGI_ASSIGN_OR_RETURN(auto i, IntFromJson(k, v));
      p.seed = i;
    } else if (k == "steps" || k == "priority" || k == "fps") {
      MAGI_ASSIGN_OR_RETURN(auto i, Int32FromJson(k, v));
      (k == "steps" ? p.steps : k == "priority" ? p.priority : p.fps) = i;
    } else {
      return UnknownField(k, allowed);
    }
  }
  if (extend && video_id->empty()) return MissingVideo();
  MAGI_RETURN_IF_ERROR(CheckPrompt(p, obj.contains("prompt") && !obj["prompt"].is_null()));
  return p;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

absl::StatusOr<std::string> PercentDecode(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%') {
      int hi = i + 1 < s.size() ? HexValue(s[i + 1]) : -1;
      int lo = i + 2 < s.size() ? HexValue(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) return absl::InvalidArgumentError("bad %-escape");
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

const std::vector<std::string>& VideoCreateFields() {
  static const auto* fields = new std::vector<std::string>{
      "prompt", "model", "seconds", "size", "input_reference", "chunk_prompts", "seed", "steps", "priority", "fps"};
  return *fields;
}

const std::vector<std::string>& VideoExtendFields() {
  static const auto* fields = new std::vector<std::string>{
      "prompt", "video", "model", "seconds", "size", "chunk_prompts", "seed", "steps", "priority", "fps"};
  return *fields;
}

absl::StatusOr<VideoCreateParams> ParseVideoCreate(absl::string_view content_type, absl::string_view body,
                                                   int max_parts) {
  MAGI_ASSIGN_OR_RETURN(auto form, FormOf(content_type));
  std::string unused;
  return form == Form::kMultipart ? CreateFromMultipart(content_type, body, max_parts, Kind::kCreate, &unused)
                                  : CreateFromJson(body, Kind::kCreate, &unused);
}

absl::StatusOr<VideoExtendParams> ParseVideoExtend(absl::string_view content_type, absl::string_view body,
                                                   int max_parts) {
  MAGI_ASSIGN_OR_RETURN(auto form, FormOf(content_type));
  VideoExtendParams out;
  MAGI_ASSIGN_OR_RETURN(auto params,
                        form == Form::kMultipart
                            ? CreateFromMultipart(content_type, body, max_parts, Kind::kExtend, &out.video_id)
                            : CreateFromJson(body, Kind::kExtend, &out.video_id));
  out.params = std::move(params);
  return out;
}

absl::StatusOr<VideoRemixParams> ParseVideoRemix(absl::string_view content_type, absl::string_view body,
                                                 int max_parts) {
  MAGI_ASSIGN_OR_RETURN(auto form, FormOf(content_type));
  VideoRemixParams p;
  bool seen = false;
  if (form == Form::kMultipart) {
    MAGI_ASSIGN_OR_RETURN(auto parts, ParseMultipartFormData(content_type, body, max_parts));
    for (const MultipartPart& part : parts) {
      if (part.name != "prompt") return UnknownField(part.name, {"prompt"});
      if (seen) return Bad("prompt", "given more than once");
      p.prompt = part.body;
      seen = true;
    }
  } else {
    MAGI_ASSIGN_OR_RETURN(auto obj, JsonObject(body));
    for (const auto& [k, v] : obj.items()) {
      if (k != "prompt") return UnknownField(k, {"prompt"});
      MAGI_RETURN_IF_ERROR(NeedString(k, v));
      p.prompt = v.get<std::string>();
      seen = true;
    }
  }
  if (!seen) return Bad("prompt", "is required (the new prompt)");
  return p;
}

GenerateRequest ToGenerateRequest(const VideoCreateParams& params, const ::magi::internal::v1::ModelInfo* model) {
  GenerateRequest r;
  r.set_model(params.model);
  ChunkPrompt* first = r.add_prompts();
  first->set_from_chunk(0);
  first->set_text(params.prompt);
  for (const ChunkPrompt& cp : params.chunk_prompts) *r.add_prompts() = cp;
  if (!params.prefix_video.empty()) {
    r.set_mode(::magi::v1::MODE_V2V);
    r.set_prefix_video(params.prefix_video);
  } else if (!params.input_reference.empty()) {
    r.set_mode(::magi::v1::MODE_I2V);
    r.set_image(params.input_reference);
  } else {
    r.set_mode(::magi::v1::MODE_T2V);
  }
  if (params.width) r.set_width(*params.width);
  if (params.height) r.set_height(*params.height);
  if (params.fps) r.set_fps(*params.fps);
  if (params.seed) r.set_seed(*params.seed);
  if (params.steps) r.set_num_steps(*params.steps);
  if (params.priority) r.set_priority(*params.priority);
  if (params.seconds) {
    const int fps = params.fps ? *params.fps : (model ? model->default_fps() : 0);
    if (fps > 0) {
      // Frames are whole: the nearest count; the JobSpec judges whether the model can make it.
      const double frames = std::round(*params.seconds * fps);
      r.set_num_frames(frames > INT32_MAX ? INT32_MAX : static_cast<int>(frames));
    }
  }
  return r;
}

ApiError SubmitErrorToApi(const absl::Status& status, const VideoCreateParams& params, const GenerateRequest& request,
                          const ::magi::internal::v1::ModelInfo* model) {
  ApiError e = ApiErrorFromStatus(status);
  if (status.code() != absl::StatusCode::kInvalidArgument) return e;
  const std::string field = e.param;
  const std::string message(status.message());
  std::string param = field;
  std::string context;
  if (field == "num_frames") {
    if (params.seconds) {
      param = "seconds";
      const int fps = request.fps() > 0 ? request.fps() : (model ? model->default_fps() : 0);
      context = absl::StrFormat("'%s' at %d fps is %d frames", params.seconds_text, fps, request.num_frames());
    } else {
      param = "seconds";
      context = "the model's default length";
    }
  } else if (field == "width" || field == "height") {
    param = "size";
    context = params.size_text.empty() ? "the model's default size" : absl::StrCat("'", params.size_text, "'");
  } else if (field == "num_steps") {
    param = "steps";
  } else if (field == "prefix_video" || (field == "mode" && !params.prefix_video.empty())) {
    param = "video";
  } else if (field == "image" || field == "mode") {
    param = "input_reference";
  } else if (field == "prompts") {
    int index = 0;
    if (absl::StartsWith(message, "prompts[")) {
      absl::SimpleAtoi(absl::string_view(message).substr(8, message.find(']') - 8), &index);
    }
    param = index == 0 ? "prompt" : absl::StrCat("chunk_prompts[", index - 1, "]");
    if (index == 0 && !params.chunk_prompts.empty()) param = "chunk_prompts";
  }
  e.param = param;
  if (param != field) {
    e.message = context.empty() ? absl::StrCat(param, ": ", message)
                                : absl::StrCat(param, ": ", context, "; ", message);
  }
  return e;
}

absl::StatusOr<std::map<std::string, std::string>> ParseQueryString(absl::string_view query) {
  std::map<std::string, std::string> out;
  for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    size_t eq = pair.find('=');
    auto key = PercentDecode(pair.substr(0, eq));
    if (!key.ok()) return Bad("query", absl::StrCat("'", Echo(pair), "': ", key.status().message()));
    auto value = PercentDecode(eq == absl::string_view::npos ? absl::string_view() : pair.substr(eq + 1));
    if (!value.ok()) return Bad(*key, value.status().message());
    if (!out.emplace(*key, *value).second) return Bad(*key, "given more than once");
  }
  return out;
}

}  // namespace magi
