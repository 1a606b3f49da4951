// GroupRegistry: the worker groups connected to this server -- their declared models and
// slots, the link each one streams through, the jobs occupying its slots and when it was
// last heard from. It also builds every message the server sends to a group (Registered,
// Assignment, CancelJob), so each is built in one place.
//
// Thread safety: none of its own. The JobManager owns it and calls it under its state lock;
// the WorkerGroupLink calls it makes only queue (they never block or call back).
// Owns the links' shared_ptrs while a group is registered; not copyable.
#ifndef MAGI_SERVER_GROUP_REGISTRY_H_
#define MAGI_SERVER_GROUP_REGISTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "magi/internal/v1/worker_pool.pb.h"
#include "server/model_catalog.h"

namespace magi {

// The server's end of one worker group's stream.
class WorkerGroupLink {
 public:
  virtual ~WorkerGroupLink() = default;
  // Queues one message to the group (must not block).
  virtual void Send(const ::magi::internal::v1::ServerMessage& message) = 0;
  // Ends the stream with `status`; the manager has already forgotten the group.
  virtual void Close(const absl::Status& status) = 0;
};

class GroupRegistry {
 public:
  struct Group {
    std::string key;  // "<group_id>#<serial>": unique for the server's lifetime
    ::magi::internal::v1::Register info;
    std::shared_ptr<WorkerGroupLink> link;
    std::set<std::string> busy;  // job ids occupying a slot (incl. cancelled, until done)
    int64_t last_seen_ms = 0;
    // It handed a job back (JobDone.handed_back): it is draining and takes no new job.
    bool draining = false;
    bool has_free_slot() const { return !draining && static_cast<int>(busy.size()) < info.slots(); }
    // True if the group declares `model` at least `width` x `height`.
    bool Serves(const std::string& model, int width, int height) const;
  };

  // `catalog` learns the models of every registered group; it must outlive the registry.
  explicit GroupRegistry(ModelCatalog* catalog) : catalog_(catalog) {}
  GroupRegistry(const GroupRegistry&) = delete;
  GroupRegistry& operator=(const GroupRegistry&) = delete;

  // OK, or InvalidArgument naming the register field a group got wrong.
  static absl::Status Validate(const ::magi::internal::v1::Register& registration);
  // OK, or FailedPrecondition when a model the group declares disagrees with a group already
  // serving that name (ModelCatalog::CheckCompatible).
  absl::Status CheckModels(const ::magi::internal::v1::Register& registration) const;
  // Adds a validated group, registers its models in the catalog and sends it Registered
  // (with `heartbeat_interval_ms`). Returns its key.
  std::string Add(const ::magi::internal::v1::Register& registration,
                  std::shared_ptr<WorkerGroupLink> link, int heartbeat_interval_ms, int64_t now_ms);
  // The group, or null if it is not (or no longer) registered.
  Group* Find(const std::string& key);
  // Records that the group was heard from; false if it is not registered.
  bool Touch(const std::string& key, int64_t now_ms);
  // Forgets the group (and its models in the catalog) and returns it; nullopt if unknown.
  // The link is not closed: the caller decides.
  std::optional<Group> Remove(const std::string& key);
  // Keys of groups not heard from for more than `timeout_ms`.
  std::vector<std::string> Silent(int64_t now_ms, int64_t timeout_ms) const;

  // Sends Assignment for attempt `attempt` of `job_id` from `start_chunk` and marks the slot busy.
  void Assign(Group& group, const std::string& job_id, int attempt,
              ::magi::internal::v1::JobSpec spec, int start_chunk);
  // Tells the group to stop attempt `attempt` of `job_id`; a no-op for an unknown group.
  void Cancel(const std::string& key, const std::string& job_id, int attempt, const std::string& reason);
  // Sends a live prompt change (PromptUpdate) for the group's job.
  void SendPromptUpdate(const std::string& key, const std::string& job_id, int attempt, int64_t update_id,
                        const std::string& text);
  // Closes every link (shutdown); the groups stay registered until their streams end.
  void CloseAll(const absl::Status& status);

  std::map<std::string, Group>& groups() { return groups_; }
  size_t size() const { return groups_.size(); }

 private:
  ModelCatalog* catalog_;
  std::map<std::string, Group> groups_;
  int64_t next_serial_ = 0;
};

}  // namespace magi

#endif  // MAGI_SERVER_GROUP_REGISTRY_H_
