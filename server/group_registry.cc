#include "server/group_registry.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace magi {

using ::magi::internal::v1::ServerMessage;

bool GroupRegistry::Group::Serves(const std::string& model, int width, int height) const {
  for (const auto& m : info.models()) {
    if (m.name() == model && width <= m.max_width() && height <= m.max_height()) return true;
  }
  return false;
}

absl::Status GroupRegistry::Validate(const ::magi::internal::v1::Register& reg) {
  if (reg.models_size() == 0) {
    return absl::InvalidArgumentError("register.models: a worker group must serve at least one model");
  }
  if (reg.slots() < 1 || reg.slots() > 64) {
    return absl::InvalidArgumentError(absl::StrCat("register.slots: ", reg.slots(), " is out of range; allowed [1, 64]"));
  }
  for (int i = 0; i < reg.models_size(); ++i) {
    const auto& m = reg.models(i);
    if (m.name().empty() || m.frames_per_chunk() < 1 || m.max_frames() < 1 || m.max_width() < 16 ||
        m.max_height() < 16 || m.max_steps() < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "register.models[", i, "]: name, frames_per_chunk, max_frames, max_steps (>= 1) and "
          "max_width/max_height (>= 16) are required"));
    }
  }
  return absl::OkStatus();
}

absl::Status GroupRegistry::CheckModels(const ::magi::internal::v1::Register& reg) const {
  for (const auto& m : reg.models()) {
    MAGI_RETURN_IF_ERROR(catalog_->CheckCompatible(m));
  }
  return absl::OkStatus();
}

std::string GroupRegistry::Add(const ::magi::internal::v1::Register& reg,
                               std::shared_ptr<WorkerGroupLink> link, int heartbeat_interval_ms,
                               int64_t now_ms) {
  Group g;
  g.key = absl::StrCat(reg.group_id().empty() ? "group" : reg.group_id(), "#", ++next_serial_);
  for (const auto& m : reg.models()) catalog_->Register(g.key, m);
  g.info = reg;
  g.link = std::move(link);
  g.last_seen_ms = now_ms;
  ServerMessage hello;
  hello.mutable_registered()->set_group_id(g.key);
  hello.mutable_registered()->set_heartbeat_interval_ms(heartbeat_interval_ms);
  g.link->Send(hello);
  std::string key = g.key;
  groups_.emplace(key, std::move(g));
  return key;
}

GroupRegistry::Group* GroupRegistry::Find(const std::string& key) {
  auto it = groups_.find(key);
  return it == groups_.end() ? nullptr : &it->second;
}

bool GroupRegistry::Touch(const std::string& key, int64_t now_ms) {
  Group* g = Find(key);
  if (g) g->last_seen_ms = now_ms;
  return g != nullptr;
}

std::optional<GroupRegistry::Group> GroupRegistry::Remove(const std::string& key) {
  auto it = groups_.find(key);
  if (it == groups_.end()) return std::nullopt;
  Group g = std::move(it->second);
  groups_.erase(it);
  catalog_->Unregister(key);
  return g;
}

std::vector<std::string> GroupRegistry::Silent(int64_t now_ms, int64_t timeout_ms) const {
  std::vector<std::string> out;
  for (const auto& [key, g] : groups_) {
    if (now_ms - g.last_seen_ms > timeout_ms) out.push_back(key);
  }
  return out;
}

void GroupRegistry::Assign(Group& group, const std::string& job_id, int attempt,
                           ::magi::internal::v1::JobSpec spec, int start_chunk) {
  group.busy.insert(job_id);
  ServerMessage m;
  auto* a = m.mutable_assign();
  a->set_job_id(job_id);
  a->set_attempt(attempt);
  *a->mutable_spec() = std::move(spec);
  a->set_start_chunk(start_chunk);
  group.link->Send(m);
}

void GroupRegistry::Cancel(const std::string& key, const std::string& job_id, int attempt,
                           const std::string& reason) {
  Group* g = Find(key);
  if (!g) return;
  ServerMessage m;
  m.mutable_cancel()->set_job_id(job_id);
  m.mutable_cancel()->set_attempt(attempt);
  m.mutable_cancel()->set_reason(reason);
  g->link->Send(m);
}

void GroupRegistry::SendPromptUpdate(const std::string& key, const std::string& job_id, int attempt,
                                     int64_t update_id, const std::string& text) {
  Group* g = Find(key);
  if (!g) return;
  ServerMessage m;
  auto* u = m.mutable_prompt_update();
  u->set_job_id(job_id);
  u->set_attempt(attempt);
  u->set_update_id(update_id);
  u->set_text(text);
  g->link->Send(m);
}

void GroupRegistry::CloseAll(const absl::Status& status) {
  for (auto& [key, g] : groups_) g.link->Close(status);
}

}  // namespace magi
