// Parsing requests without protobuf's UTF-8 check, so the server can refuse invalid UTF-8
// in a string field with INVALID_ARGUMENT naming the field.
//
// Why: a proto3 `string` field holding invalid UTF-8 makes the generated parser fail (and
// log a libprotobuf ERROR line). gRPC turns a failed request parse into a status the client
// cannot act on (UNIMPLEMENTED with an empty message on server-streaming calls). Declaring
// the fields `bytes` would be wire-compatible but changes every client's generated type
// (str -> bytes in Python), so the public proto stays as it is and the server parses
// leniently instead: ParseAllowingInvalidUtf8 reads the wire bytes against a twin of the
// message's descriptor whose `string` fields are `bytes`, and copies the fields over
// unchecked; FirstInvalidUtf8Field then finds the offending field for the handler.
//
// The gRPC side is grpc_serialization_traits.h (pulled into the generated
// video_generation.grpc.pb.h), which routes the magi.v1 request messages through this.
//
// Thread-safe.
#ifndef MAGI_PROTO_UTF8_LENIENT_H_
#define MAGI_PROTO_UTF8_LENIENT_H_

#include <optional>
#include <string>

#include <google/protobuf/message.h>

namespace magi {

// Parses `wire` into `message` (cleared first). String fields may come out holding invalid
// UTF-8; everything else is exactly what ParseFromString gives. False when the bytes are
// not a valid encoding of the message even with strings read as bytes.
bool ParseAllowingInvalidUtf8(const std::string& wire, google::protobuf::Message* message);

// The path of the first `string` field (depth first, in field-number order) that is not
// valid UTF-8, e.g. "prompts[1].text"; nullopt when every string is valid.
std::optional<std::string> FirstInvalidUtf8Field(const google::protobuf::Message& message);

// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or code points above
// U+10FFFF).
bool IsValidUtf8(const std::string& s);

}  // namespace magi

#endif  // MAGI_PROTO_UTF8_LENIENT_H_
