#include "proto/utf8_lenient.h"

#include <map>
#include <memory>
#include <mutex>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>

namespace magi {
namespace {

namespace pb = google::protobuf;

void StringsToBytes(pb::DescriptorProto* m) {
  for (auto& f : *m->mutable_field()) {
    if (f.type() == pb::FieldDescriptorProto::TYPE_STRING) f.set_type(pb::FieldDescriptorProto::TYPE_BYTES);
  }
  for (auto& nested : *m->mutable_nested_type()) StringsToBytes(&nested);
}

// Twin descriptors (strings as bytes) in a pool of their own, built once per file.
class TwinPool {
 public:
  static TwinPool& Get() {
    static TwinPool* pool = new TwinPool;  // never destroyed: prototypes outlive every caller
    return *pool;
  }

  // The twin of `d`, or null if its file could not be rebuilt.
  const pb::Message* Prototype(const pb::Descriptor* d) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!AddFileLocked(d->file())) return nullptr;
    const pb::Descriptor* twin = pool_.FindMessageTypeByName(d->full_name());
    return twin ? factory_.GetPrototype(twin) : nullptr;
  }

 private:
  bool AddFileLocked(const pb::FileDescriptor* file) {
    if (pool_.FindFileByName(file->name())) return true;
    for (int i = 0; i < file->dependency_count(); ++i) {
      if (!AddFileLocked(file->dependency(i))) return false;
    }
    pb::FileDescriptorProto proto;
    file->CopyTo(&proto);
    for (auto& m : *proto.mutable_message_type()) StringsToBytes(&m);
    return pool_.BuildFile(proto) != nullptr;
  }

  std::mutex mu_;
  pb::DescriptorPool pool_;
  pb::DynamicMessageFactory factory_{&pool_};
};

// Copies every set field of `from` (a twin) into `to` by field number, strings unchecked.
void CopyFields(const pb::Message& from, pb::Message* to) {
  const pb::Reflection* fr = from.GetReflection();
  const pb::Reflection* tr = to->GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  fr->ListFields(from, &fields);
  for (const pb::FieldDescriptor* f : fields) {
    const pb::FieldDescriptor* t = to->GetDescriptor()->FindFieldByNumber(f->number());
    if (t == nullptr) continue;  // cannot happen: the twin has the same fields
    if (f->is_repeated()) {
      const int n = fr->FieldSize(from, f);
      for (int i = 0; i < n; ++i) {
        switch (f->cpp_type()) {
#define MAGI_COPY_REPEATED(CPPTYPE, TYPE) \
  case pb::FieldDescriptor::CPPTYPE:      \
    tr->Add##TYPE(to, t, fr->GetRepeated##TYPE(from, f, i)); \
    break;
          MAGI_COPY_REPEATED(CPPTYPE_INT32, Int32)
          MAGI_COPY_REPEATED(CPPTYPE_INT64, Int64)
          MAGI_COPY_REPEATED(CPPTYPE_UINT32, UInt32)
          MAGI_COPY_REPEATED(CPPTYPE_UINT64, UInt64)
          MAGI_COPY_REPEATED(CPPTYPE_DOUBLE, Double)
          MAGI_COPY_REPEATED(CPPTYPE_FLOAT, Float)
          MAGI_COPY_REPEATED(CPPTYPE_BOOL, Bool)
          MAGI_COPY_REPEATED(CPPTYPE_STRING, String)
          MAGI_COPY_REPEATED(CPPTYPE_ENUM, EnumValue)
#undef MAGI_COPY_REPEATED
          case pb::FieldDescriptor::CPPTYPE_MESSAGE:
            CopyFields(fr->GetRepeatedMessage(from, f, i), tr->AddMessage(to, t));
            break;
        }
      }
      continue;
    }
    switch (f->cpp_type()) {
#define MAGI_COPY(CPPTYPE, TYPE)                   \
  case pb::FieldDescriptor::CPPTYPE:               \
    tr->Set##TYPE(to, t, fr->Get##TYPE(from, f)); \
    break;
      MAGI_COPY(CPPTYPE_INT32, Int32)
      MAGI_COPY(CPPTYPE_INT64, Int64)
      MAGI_COPY(CPPTYPE_UINT32, UInt32)
      MAGI_COPY(CPPTYPE_UINT64, UInt64)
      MAGI_COPY(CPPTYPE_DOUBLE, Double)
      MAGI_COPY(CPPTYPE_FLOAT, Float)
      MAGI_COPY(CPPTYPE_BOOL, Bool)
      MAGI_COPY(CPPTYPE_STRING, String)
      MAGI_COPY(CPPTYPE_ENUM, EnumValue)
#undef MAGI_COPY
      case pb::FieldDescriptor::CPPTYPE_MESSAGE:
        CopyFields(fr->GetMessage(from, f), tr->MutableMessage(to, t));
        break;
    }
  }
  tr->MutableUnknownFields(to)->MergeFrom(fr->GetUnknownFields(from));
}

std::optional<std::string> FirstInvalid(const pb::Message& m, const std::string& prefix) {
  const pb::Reflection* r = m.GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const pb::FieldDescriptor* f : fields) {
    const std::string name = prefix + f->name();
    if (f->type() == pb::FieldDescriptor::TYPE_STRING) {
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(m, f); ++i) {
          if (!IsValidUtf8(r->GetRepeatedString(m, f, i))) return name + "[" + std::to_string(i) + "]";
        }
      } else if (!IsValidUtf8(r->GetString(m, f))) {
        return name;
      }
    } else if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(m, f); ++i) {
          if (auto bad = FirstInvalid(r->GetRepeatedMessage(m, f, i), name + "[" + std::to_string(i) + "].")) {
            return bad;
          }
        }
      } else if (auto bad = FirstInvalid(r->GetMessage(m, f), name + ".")) {
        return bad;
      }
    }
  }
  return std::nullopt;
}

}  // namespace

bool IsValidUtf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;  // continuation byte, overlong lead (C0/C1) or beyond U+10FFFF
    }
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += static_cast<size_t>(len);
  }
  return true;
}

bool ParseAllowingInvalidUtf8(const std::string& wire, pb::Message* message) {
  message->Clear();
  const pb::Message* prototype = TwinPool::Get().Prototype(message->GetDescriptor());
  if (prototype == nullptr) return message->ParseFromString(wire);
  std::unique_ptr<pb::Message> twin(prototype->New());
  if (!twin->ParseFromString(wire)) return false;
  CopyFields(*twin, message);
  return true;
}

std::optional<std::string> FirstInvalidUtf8Field(const pb::Message& message) {
  return FirstInvalid(message, "");
}

}  // namespace magi
