// gRPC deserialization of the magi.v1 request messages without protobuf's UTF-8 check
// (see utf8_lenient.h for why). Included by the generated video_generation.grpc.pb.h
// (protoc's grpc plugin option additional_header_includes, proto/CMakeLists.txt), so these
// specializations are seen before any gRPC template that uses them is instantiated.
// Handlers must refuse what FirstInvalidUtf8Field finds (server/video_generation_service.cc).
#ifndef MAGI_PROTO_GRPC_SERIALIZATION_TRAITS_H_
#define MAGI_PROTO_GRPC_SERIALIZATION_TRAITS_H_

#include <string>
#include <vector>

#include <grpcpp/impl/codegen/proto_buffer_writer.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/byte_buffer.h>

#include "magi/v1/video_generation.pb.h"
#include "proto/utf8_lenient.h"

namespace magi {

template <class T>
class LenientRequestTraits {
 public:
  // Responses and client-side requests are serialized as usual.
  static grpc::Status Serialize(const grpc::protobuf::MessageLite& msg, grpc::ByteBuffer* bb, bool* own_buffer) {
    return grpc::GenericSerialize<grpc::ProtoBufferWriter, T>(msg, bb, own_buffer);
  }
  static grpc::Status Deserialize(grpc::ByteBuffer* buffer, grpc::protobuf::MessageLite* msg) {
    if (buffer == nullptr) return grpc::Status(grpc::StatusCode::INTERNAL, "no payload");
    std::vector<grpc::Slice> slices;
    grpc::Status dumped = buffer->Dump(&slices);
    buffer->Clear();
    if (!dumped.ok()) return dumped;
    std::string wire;
    for (const grpc::Slice& s : slices) wire.append(reinterpret_cast<const char*>(s.begin()), s.size());
    if (!ParseAllowingInvalidUtf8(wire, static_cast<T*>(msg))) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "request is not a valid " + T::descriptor()->full_name());
    }
    return grpc::Status::OK;
  }
};

}  // namespace magi

namespace grpc {
#define MAGI_LENIENT_REQUEST(T) \
  template <>                   \
  class SerializationTraits<T, void> : public ::magi::LenientRequestTraits<T> {};

MAGI_LENIENT_REQUEST(::magi::v1::GenerateRequest)
MAGI_LENIENT_REQUEST(::magi::v1::WatchRequest)
MAGI_LENIENT_REQUEST(::magi::v1::CancelRequest)
MAGI_LENIENT_REQUEST(::magi::v1::GetJobRequest)
MAGI_LENIENT_REQUEST(::magi::v1::ListJobsRequest)
MAGI_LENIENT_REQUEST(::magi::v1::GetVideoRequest)
#undef MAGI_LENIENT_REQUEST
}  // namespace grpc

#endif  // MAGI_PROTO_GRPC_SERIALIZATION_TRAITS_H_
