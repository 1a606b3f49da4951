#include "api/multipart.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"

namespace magi {
namespace {

absl::Status Broken(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("multipart body: ", what));
}

// The value of parameter `key` in a header value like `form-data; name="x"; filename="y"`;
// found=false when absent. Quoted values may contain ';' and escaped quotes.
std::string HeaderParam(absl::string_view value, absl::string_view key, bool* found) {
  *found = false;
  size_t i = value.find(';');
  while (i != absl::string_view::npos && i < value.size()) {
    ++i;
    while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
    size_t eq = value.find('=', i);
    if (eq == absl::string_view::npos) return "";
    absl::string_view k = absl::StripAsciiWhitespace(value.substr(i, eq - i));
    size_t j = eq + 1;
    std::string v;
    if (j < value.size() && value[j] == '"') {
      ++j;
      while (j < value.size() && value[j] != '"') {
        if (value[j] == '\\' && j + 1 < value.size()) ++j;
        v.push_back(value[j++]);
      }
      ++j;  // closing quote
    } else {
      size_t end = value.find(';', j);
      v = std::string(absl::StripAsciiWhitespace(value.substr(j, end == absl::string_view::npos ? absl::string_view::npos : end - j)));
      j = end == absl::string_view::npos ? value.size() : end;
    }
    if (absl::EqualsIgnoreCase(k, key)) {
      *found = true;
      return v;
    }
    i = value.find(';', j);
  }
  return "";
}

}  // namespace

absl::StatusOr<std::string> MultipartBoundary(absl::string_view content_type) {
  absl::string_view media = content_type.substr(0, content_type.find(';'));
  if (!absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(media), "multipart/form-data")) {
    return absl::InvalidArgumentError(
        absl::StrCat("Content-Type: '", content_type, "' is not multipart/form-data"));
  }
  bool found = false;
  std::string boundary = HeaderParam(content_type, "boundary", &found);
  if (!found || boundary.empty() || boundary.size() > 70) {
    return absl::InvalidArgumentError("Content-Type: multipart/form-data needs a boundary parameter of 1 to 70 characters");
  }
  return boundary;
}

absl::StatusOr<std::vector<MultipartPart>> ParseMultipartFormData(absl::string_view content_type,
                                                                 absl::string_view body, int max_parts) {
  MAGI_ASSIGN_OR_RETURN(auto boundary, MultipartBoundary(content_type));
  const std::string delimiter = absl::StrCat("--", boundary);
  // The first delimiter may be preceded by a preamble; later ones follow a CRLF.
  size_t pos;
  if (absl::StartsWith(body, delimiter)) {
    pos = 0;
  } else {
    pos = body.find(absl::StrCat("\r\n", delimiter));
    if (pos == absl::string_view::npos) return Broken("the boundary from Content-Type does not occur");
    pos += 2;
  }
  std::vector<MultipartPart> parts;
  const std::string next_delimiter = absl::StrCat("\r\n", delimiter);
  while (true) {
    pos += delimiter.size();
    if (body.substr(pos, 2) == "--") return parts;  // the close delimiter; an epilogue may follow
    // Transport padding (spaces/tabs) then CRLF.
    while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t')) ++pos;
    if (body.substr(pos, 2) != "\r\n") return Broken("a boundary line does not end with CRLF");
    pos += 2;
    size_t headers_end = body.find("\r\n\r\n", pos);
    size_t part_end = body.find(next_delimiter, pos);
    if (part_end == absl::string_view::npos) return Broken("a part is not closed by a boundary (truncated upload?)");
    if (static_cast<int>(parts.size()) >= max_parts) {
      return Broken(absl::StrCat("more than ", max_parts, " parts"));
    }
    MultipartPart part;
    absl::string_view headers;
    if (body.substr(pos, 2) == "\r\n") {  // no headers at all
      headers = "";
      pos += 2;
    } else {
      if (headers_end == absl::string_view::npos || headers_end > part_end) {
        return Broken(absl::StrCat("part ", parts.size() + 1, " has no blank line after its headers"));
      }
      headers = body.substr(pos, headers_end - pos);
      pos = headers_end + 4;
    }
    bool disposition = false;
    for (absl::string_view line : absl::StrSplit(headers, "\r\n")) {
      size_t colon = line.find(':');
      if (colon == absl::string_view::npos) {
        return Broken(absl::StrCat("part ", parts.size() + 1, " has a header line without ':'"));
      }
      absl::string_view key = absl::StripAsciiWhitespace(line.substr(0, colon));
      absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
      if (absl::EqualsIgnoreCase(key, "Content-Disposition")) {
        absl::string_view kind = absl::StripAsciiWhitespace(value.substr(0, value.find(';')));
        if (!absl::EqualsIgnoreCase(kind, "form-data")) {
          return Broken(absl::StrCat("part ", parts.size() + 1, ": Content-Disposition is '", kind,
                                     "', expected form-data"));
        }
        bool found = false;
        part.name = HeaderParam(value, "name", &found);
        if (!found || part.name.empty()) {
          return Broken(absl::StrCat("part ", parts.size() + 1, ": Content-Disposition has no name"));
        }
        part.filename = HeaderParam(value, "filename", &part.is_file);
        disposition = true;
      } else if (absl::EqualsIgnoreCase(key, "Content-Type")) {
        part.content_type = std::string(value);
      }
    }
    if (!disposition) {
      return Broken(absl::StrCat("part ", parts.size() + 1, " has no Content-Disposition: form-data header"));
    }
    part.body = std::string(body.substr(pos, part_end - pos));
    parts.push_back(std::move(part));
    pos = part_end + 2;
  }
}

}  // namespace magi
