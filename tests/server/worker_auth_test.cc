// The worker token file format (base/worker_token.h) and the server's check
// (server/token_auth.h): what is accepted, what is refused and how, rotation, generation.
#include "server/token_auth.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "base/worker_token.h"
#include "server/server_metrics.h"

namespace magi {
namespace {

namespace fs = std::filesystem;

const char kGood[] = "0123456789abcdef-good-token";
const char kOther[] = "fedcba9876543210-other-token";

class WorkerAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("magi-auth-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    return path;
  }
  double Failures(const std::string& reason) { return metrics_.WorkerAuthFailures(reason).Value(); }

  fs::path dir_;
  ServerMetrics metrics_;
};

TEST_F(WorkerAuthTest, ReadsTokensSkippingBlankLinesCommentsAndWhitespace) {
  auto tokens = ReadWorkerTokenFile(Write("t", std::string("# rotation: new first\n\n  ") + kGood + "  \r\n" + kOther + "\n"));
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(*tokens, (std::vector<std::string>{kGood, kOther}));
}

TEST_F(WorkerAuthTest, BadFilesAreRefusedNamingTheFileWithoutEchoingTheToken) {
  struct Case {
    std::string path;
    std::string expect;
  } cases[] = {
      {"", "not set"},
      {(dir_ / "missing").string(), "cannot open"},
      {Write("empty", ""), "holds no token"},
      {Write("comments", "# only a comment\n\n"), "holds no token"},
      {Write("short", "tooshort\n"), "line 1: a token has 16 to 1024 characters, this one 8"},
      {Write("space", "0123456789 abcdef-secret\n"), "line 1: a token is printable ASCII"},
      {Write("binary", std::string("0123456789abcdef\x01secret")), "printable ASCII"},
      {Write("huge", std::string(kWorkerTokenFileMaxBytes + 10, 'a')), "larger than"},
      {dir_.string(), "not a regular file"},
  };
  for (const auto& c : cases) {
    auto tokens = ReadWorkerTokenFile(c.path);
    ASSERT_FALSE(tokens.ok()) << c.path;
    EXPECT_EQ(tokens.status().code(), absl::StatusCode::kInvalidArgument) << c.path;
    EXPECT_NE(tokens.status().message().find(c.expect), std::string::npos) << tokens.status();
    EXPECT_NE(tokens.status().message().find("--worker_token_file"), std::string::npos) << tokens.status();
    EXPECT_EQ(tokens.status().message().find("secret"), std::string::npos) << tokens.status();
  }
}

TEST_F(WorkerAuthTest, ClientTokensFileMapsTokensToTenantsNamingItsFlag) {
  auto entries = ReadTokenFile(Write("c", std::string("# token tenant\n") + kGood + " team-a\n  " + kOther +
                                              "\tteam_b.2  \n"),
                               "--client_tokens_file", /*with_tenant=*/true);
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].token, kGood);
  EXPECT_EQ((*entries)[0].tenant, "team-a");
  EXPECT_EQ((*entries)[1].token, kOther);
  EXPECT_EQ((*entries)[1].tenant, "team_b.2");
  struct Case {
    std::string text;
    std::string expect;
  } cases[] = {
      {std::string(kGood) + "\n", "line 1: expected '<token> <tenant>', found 1 fields"},
      {std::string(kGood) + " a b\n", "found 3 fields"},
      {std::string(kGood) + " bad/tenant\n", "tenant 'bad/tenant' is not"},
      {"0123456789abcdef-secret\x01 tenant\n", "printable ASCII"},
      {"short-secret tenant\n", "this one 12"},
  };
  for (const auto& c : cases) {
    auto bad = ReadTokenFile(Write("bad", c.text), "--client_tokens_file", true);
    ASSERT_FALSE(bad.ok()) << c.text;
    EXPECT_NE(bad.status().message().find(c.expect), std::string::npos) << bad.status();
    EXPECT_NE(bad.status().message().find("--client_tokens_file"), std::string::npos) << bad.status();
    EXPECT_EQ(bad.status().message().find("secret"), std::string::npos) << bad.status();
  }
}

TEST_F(WorkerAuthTest, ConstantTimeEqualsIsEquality) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals("abd", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("ab", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abcd", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", ""));
  EXPECT_FALSE(ConstantTimeEquals(std::string("abc\0", 4), "abc"));
}

TEST_F(WorkerAuthTest, OnlyABearerTokenOfTheFileIsAccepted) {
  auto auth = TokenAuthenticator::FromFile(Write("t", std::string(kGood) + "\n" + kOther + "\n"), TokenRole::kWorker, &metrics_);
  ASSERT_TRUE(auth.ok()) << auth.status();
  TokenAuthenticator& a = **auth;
  EXPECT_TRUE(a.Check(std::string("Bearer ") + kGood, "ipv4:1.2.3.4:5").ok());
  EXPECT_TRUE(a.Check(std::string("bearer ") + kOther, "p").ok());  // the scheme is case-insensitive

  absl::Status missing = a.Check("", "p");
  EXPECT_EQ(missing.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(missing.message().find("authorization: Bearer"), std::string::npos) << missing;
  EXPECT_EQ(a.Check(kGood, "p").code(), absl::StatusCode::kUnauthenticated);  // no scheme
  EXPECT_EQ(a.Check("Basic Zm9vOmJhcg==", "p").code(), absl::StatusCode::kUnauthenticated);
  absl::Status wrong = a.Check("Bearer 0123456789abcdef-good-tokeX", "p");
  EXPECT_EQ(wrong.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(wrong.message().find("tokeX"), std::string::npos) << wrong;  // never echoed
  EXPECT_EQ(a.Check(std::string("Bearer ") + kGood + "x", "p").code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(a.Check("Bearer 0123456789abcdef", "p").code(), absl::StatusCode::kUnauthenticated);  // a prefix
  EXPECT_EQ(a.Check("Bearer ", "p").code(), absl::StatusCode::kUnauthenticated);

  EXPECT_EQ(Failures("missing"), 1);
  EXPECT_EQ(Failures("malformed"), 2);
  EXPECT_EQ(Failures("invalid"), 4);
  EXPECT_NE(metrics_.Serialize().find("magi_worker_auth_failures_total{reason=\"invalid\"} 4"), std::string::npos);
}

TEST_F(WorkerAuthTest, ARotatedFileIsPickedUpWithoutRestartAndABrokenOneKeepsTheOldTokens) {
  std::string path = Write("t", std::string(kGood) + "\n");
  auto auth = TokenAuthenticator::FromFile(path, TokenRole::kWorker, &metrics_);
  ASSERT_TRUE(auth.ok()) << auth.status();
  TokenAuthenticator& a = **auth;
  EXPECT_TRUE(a.Check(std::string("Bearer ") + kGood, "p").ok());
  EXPECT_FALSE(a.Check(std::string("Bearer ") + kOther, "p").ok());

  // Rotation as Kubernetes does it: a new file renamed over the old one.
  std::string next = Write("t.next", std::string(kOther) + "\n");
  ASSERT_EQ(::rename(next.c_str(), path.c_str()), 0);
  EXPECT_TRUE(a.Check(std::string("Bearer ") + kOther, "p").ok());
  EXPECT_FALSE(a.Check(std::string("Bearer ") + kGood, "p").ok());

  // A broken replacement (e.g. truncated) does not lock every worker out.
  std::string broken = Write("t.broken", "");
  ASSERT_EQ(::rename(broken.c_str(), path.c_str()), 0);
  EXPECT_TRUE(a.Check(std::string("Bearer ") + kOther, "p").ok());
}

TEST_F(WorkerAuthTest, FromFileRefusesAnUnusableFile) {
  auto auth = TokenAuthenticator::FromFile(Write("empty", "\n"), TokenRole::kWorker, &metrics_);
  ASSERT_FALSE(auth.ok());
  EXPECT_EQ(auth.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(auth.status().message().find("holds no token"), std::string::npos) << auth.status();
}

TEST_F(WorkerAuthTest, GeneratedTokenIsPrivateRandomAndReadable) {
  auto path = WriteGeneratedWorkerToken(dir_.string());
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, (dir_ / "worker_token").string());
  struct stat st;
  ASSERT_EQ(::stat(path->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto first = ReadWorkerTokenFile(*path);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->size(), 1u);
  EXPECT_EQ(first->front().size(), 64u);
  EXPECT_EQ(first->front().find_first_not_of("0123456789abcdef"), std::string::npos);
  ASSERT_TRUE(WriteGeneratedWorkerToken(dir_.string()).ok());  // a new start: a new token
  auto second = ReadWorkerTokenFile(*path);
  ASSERT_TRUE(second.ok());
  EXPECT_NE(first->front(), second->front());
  EXPECT_FALSE(fs::exists(dir_ / "worker_token.tmp"));

  auto bad = WriteGeneratedWorkerToken((dir_ / "no" / "such").string());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace magi

namespace magi {
namespace {

// The client role: the token's tenant comes back; refusals are counted apart from workers'.
TEST_F(WorkerAuthTest, AClientTokenAuthenticatesAsItsTenant) {
  auto auth = TokenAuthenticator::FromFile(
      Write("c", std::string("# clients\n") + kGood + " alice\n" + kOther + " bob\n"), TokenRole::kClient, &metrics_);
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_EQ(*(*auth)->Authenticate(std::string("Bearer ") + kGood, "p"), "alice");
  EXPECT_EQ(*(*auth)->Authenticate(std::string("Bearer ") + kOther, "p"), "bob");
  EXPECT_EQ((*auth)->Authenticate("", "p").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*auth)->Authenticate("Bearer 0123456789abcdef-not-a-token", "p").status().code(),
            absl::StatusCode::kUnauthenticated);
  const std::string text = metrics_.Serialize();
  EXPECT_NE(text.find("magi_client_auth_failures_total{reason=\"missing\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("magi_client_auth_failures_total{reason=\"invalid\"} 1"), std::string::npos) << text;
  EXPECT_EQ(Failures("missing"), 0);  // worker refusals are a separate count
  EXPECT_EQ(Failures("invalid"), 0);

  // A worker token file (no tenants) is not a client tokens file.
  auto workers = TokenAuthenticator::FromFile(Write("w", std::string(kGood) + "\n"), TokenRole::kClient, &metrics_);
  ASSERT_FALSE(workers.ok());
  EXPECT_NE(workers.status().message().find("--client_tokens_file"), std::string::npos) << workers.status();
}

}  // namespace
}  // namespace magi
