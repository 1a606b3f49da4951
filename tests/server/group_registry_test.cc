// GroupRegistry: validation names the field, keys are unique, the catalog follows the
// groups, slots, silence, and the messages it builds (Registered, Assignment, CancelJob).
#include "server/group_registry.h"

#include <gtest/gtest.h>

#include "jobspec/builtin_models.h"

namespace magi {
namespace {

using ::magi::internal::v1::ServerMessage;

class RecordingLink final : public WorkerGroupLink {
 public:
  void Send(const ServerMessage& m) override { sent.push_back(m); }
  void Close(const absl::Status& s) override { closed = s; }
  std::vector<ServerMessage> sent;
  absl::Status closed;
};

::magi::internal::v1::Register Registration(const std::string& id, int slots) {
  ::magi::internal::v1::Register r;
  r.set_group_id(id);
  r.set_slots(slots);
  auto* m = r.add_models();
  *m = TinyModelInfo();
  m->set_name("special");
  return r;
}

TEST(GroupRegistryTest, ValidateNamesTheField) {
  auto r = Registration("g", 1);
  EXPECT_TRUE(GroupRegistry::Validate(r).ok());
  r.set_slots(0);
  EXPECT_NE(GroupRegistry::Validate(r).message().find("register.slots"), std::string::npos);
  r = Registration("g", 1);
  r.clear_models();
  EXPECT_NE(GroupRegistry::Validate(r).message().find("register.models"), std::string::npos);
  r = Registration("g", 1);
  r.mutable_models(0)->set_max_width(8);
  EXPECT_NE(GroupRegistry::Validate(r).message().find("register.models[0]"), std::string::npos);
}

TEST(GroupRegistryTest, AddSendsRegisteredAndTheCatalogFollowsTheGroups) {
  ModelCatalog catalog("tiny");
  GroupRegistry registry(&catalog);
  auto link = std::make_shared<RecordingLink>();
  std::string a = registry.Add(Registration("g", 2), link, 750, 1000);
  std::string b = registry.Add(Registration("g", 1), std::make_shared<RecordingLink>(), 750, 1000);
  EXPECT_NE(a, b);
  ASSERT_EQ(link->sent.size(), 1u);
  EXPECT_EQ(link->sent[0].registered().group_id(), a);
  EXPECT_EQ(link->sent[0].registered().heartbeat_interval_ms(), 750);
  EXPECT_TRUE(catalog.Find("special").has_value());
  EXPECT_TRUE(registry.Remove(a).has_value());
  EXPECT_TRUE(catalog.Find("special").has_value());  // b still serves it
  EXPECT_TRUE(registry.Remove(b).has_value());
  EXPECT_FALSE(catalog.Find("special").has_value());
  EXPECT_FALSE(registry.Remove(b).has_value());
  EXPECT_EQ(registry.size(), 0u);
}

// One name, one model: a group declaring a known name with other chunking / tokens is
// refused; differing limits merge (the most permissive wins).
TEST(GroupRegistryTest, GroupsDeclaringOneNameMustAgreeOnTheModel) {
  ModelCatalog catalog("tiny");
  GroupRegistry registry(&catalog);
  auto first = Registration("small", 1);
  EXPECT_TRUE(registry.CheckModels(first).ok());
  registry.Add(first, std::make_shared<RecordingLink>(), 1000, 0);
  auto bigger = Registration("big", 1);
  bigger.mutable_models(0)->set_max_width(1024);
  EXPECT_TRUE(registry.CheckModels(bigger).ok());
  registry.Add(bigger, std::make_shared<RecordingLink>(), 1000, 0);
  EXPECT_EQ(catalog.Find("special")->max_width(), 1024);
  auto other = Registration("other", 1);
  other.mutable_models(0)->set_frames_per_chunk(48);
  absl::Status s = registry.CheckModels(other);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("model 'special': frames_per_chunk 48 disagrees with 24"), std::string::npos) << s;
  other = Registration("other", 1);
  other.mutable_models(0)->clear_special_tokens();
  s = registry.CheckModels(other);
  EXPECT_NE(s.message().find("special_tokens [] disagrees with [PAD_HQ, PAD_DURATION]"), std::string::npos) << s;
  // Under its own name the same declaration is a separate catalog entry.
  other.mutable_models(0)->set_name("special-4.5b");
  EXPECT_TRUE(registry.CheckModels(other).ok());
  // The built-in "tiny" is replaced, not compared against.
  auto tiny = Registration("t", 1);
  tiny.mutable_models(0)->set_name("tiny");
  tiny.mutable_models(0)->set_frames_per_chunk(48);
  EXPECT_TRUE(registry.CheckModels(tiny).ok());
}

TEST(GroupRegistryTest, AssignFillsSlotsAndCancelReachesOnlyKnownGroups) {
  ModelCatalog catalog("tiny");
  GroupRegistry registry(&catalog);
  auto link = std::make_shared<RecordingLink>();
  std::string key = registry.Add(Registration("g", 1), link, 1000, 0);
  GroupRegistry::Group* g = registry.Find(key);
  ASSERT_NE(g, nullptr);
  EXPECT_TRUE(g->Serves("special", 64, 64));
  EXPECT_FALSE(g->Serves("special", 1 << 20, 64));
  EXPECT_FALSE(g->Serves("other", 64, 64));
  EXPECT_TRUE(g->has_free_slot());
  ::magi::internal::v1::JobSpec spec;
  spec.set_chunks_total(3);
  registry.Assign(*g, "j1", 2, spec, 1);
  EXPECT_FALSE(g->has_free_slot());
  ASSERT_EQ(link->sent.size(), 2u);
  const auto& a = link->sent[1].assign();
  EXPECT_EQ(a.job_id(), "j1");
  EXPECT_EQ(a.attempt(), 2);
  EXPECT_EQ(a.start_chunk(), 1);
  EXPECT_EQ(a.spec().chunks_total(), 3);
  registry.Cancel(key, "j1", 2, "deadline exceeded");
  registry.Cancel("nobody#9", "j1", 2, "ignored");
  ASSERT_EQ(link->sent.size(), 3u);
  EXPECT_EQ(link->sent[2].cancel().reason(), "deadline exceeded");
  EXPECT_EQ(link->sent[2].cancel().attempt(), 2);
}

TEST(GroupRegistryTest, SilentGroupsAreThoseNotHeardFromWithinTheTimeout) {
  ModelCatalog catalog("tiny");
  GroupRegistry registry(&catalog);
  std::string a = registry.Add(Registration("a", 1), std::make_shared<RecordingLink>(), 1000, 0);
  std::string b = registry.Add(Registration("b", 1), std::make_shared<RecordingLink>(), 1000, 0);
  EXPECT_TRUE(registry.Touch(b, 9000));
  EXPECT_FALSE(registry.Touch("nobody#1", 9000));
  EXPECT_EQ(registry.Silent(10000, 5000), (std::vector<std::string>{a}));
  EXPECT_TRUE(registry.Silent(4000, 5000).empty());
  auto link = std::make_shared<RecordingLink>();
  registry.Add(Registration("c", 1), link, 1000, 0);
  registry.CloseAll(absl::UnavailableError("bye"));
  EXPECT_TRUE(absl::IsUnavailable(link->closed));
}

}  // namespace
}  // namespace magi
